"""Range request fixes: a hostile Range header must not make the server build, spool or send
far more than the file (the Apache "Range killer").

Applied once by ``startup.start_zope`` after the WebDAV fixes (``apply()`` is idempotent).
Each is listed with the test that proves it (``tests/integration/test_http1_hostile.py``,
``tests/unit/test_ranges.py``).

1. Many or overlapping ranges on an OFS File. ``OFS.Image.File`` answers every range of a
   multi-range request, in the order asked, overlapping or not: 1000 ranges ``0-`` of a
   10 MB File make a 10 GB multipart response, which the publisher's ``RESPONSE.write``
   spools to a temporary file before it is sent (the Apache "Range killer",
   CVE-2011-3192). RFC 9110 14.2 lets a server ignore a Range header with overlapping or
   many ranges: with more than ``MAX_RANGES`` ranges, or any two that overlap, the Range
   header is ignored and the File sent once (200). Test: ``test_many_overlapping_ranges_
   on_an_ofs_file_are_ignored``.
2. Unsatisfiable ranges on a Plone file. plone.namedfile's ``@@download`` and
   ``@@display-file`` answered a Range none of whose ranges lies within the file
   (``bytes=<size>-``, what a client resuming a finished download sends) with the whole
   file and 200. It gets 416 with ``Content-Range: bytes */<size>`` and no body (RFC 9110
   14.2, 15.5.17). Its multi-range requests stay as they were (the whole file once, 200:
   bounded). Test: ``test_unsatisfiable_range_on_a_plone_file_gets_416``.
"""

import functools

from ZPublisher.HTTPRangeSupport import expandRanges, parseRange

#: Ranges one request may ask for before its Range header is ignored (RFC 9110 14.2).
MAX_RANGES = 32

_originals = {}


def satisfiable_ranges(header, size):
    """The ranges of a Range ``header`` within ``size`` bytes, as ``(start, end)``
    (end exclusive); None when the header is not a valid bytes range (Zope ignores it)."""
    ranges = parseRange(header)
    if not ranges:
        return None
    return expandRanges(ranges, size)


def ranges_to_ignore(header, size):
    """True when a Range ``header`` asks for more than MAX_RANGES ranges, or overlapping
    ones, of a resource of ``size`` bytes (RFC 9110 14.2 lets the server ignore it)."""
    ranges = parseRange(header) if header else None
    if not ranges:
        return False
    if len(ranges) > MAX_RANGES:
        return True
    expanded = sorted(expandRanges(ranges, size))
    return any(start < previous_end
               for (_, previous_end), (start, _) in zip(expanded, expanded[1:]))


def _bounded_ranges(handler):
    @functools.wraps(handler)
    def _range_request_handler(self, REQUEST, RESPONSE):
        header = REQUEST.get_header("Request-Range", None) or REQUEST.get_header("Range", None)
        if ranges_to_ignore(header, self.size):
            return False  # index_html sends the whole File
        return handler(self, REQUEST, RESPONSE)
    return _range_request_handler


def _unsatisfiable_is_416(handle):
    @functools.wraps(handle)
    def handle_request_range(self, file):
        answer = handle(self, file)
        request = self.request
        header = request.getHeader("Range", None)
        if answer or header is None or request.getHeader("If-Range", None) is not None:
            return answer
        size = file.getSize()
        if satisfiable_ranges(header, size) != []:
            return answer  # invalid (ignored) or satisfiable: the whole file, as before
        response = request.response
        response.setStatus(416)
        response.setHeader("Content-Range", f"bytes */{size}")
        response.setHeader("Content-Length", 0)
        return {"start": 0, "end": 0}  # stream_data: no bytes
    return handle_request_range


def apply():
    """Install the fixes (once)."""
    if _originals:
        return
    from OFS.Image import File
    _originals["File._range_request_handler"] = (File, File._range_request_handler)
    File._range_request_handler = _bounded_ranges(File._range_request_handler)
    try:
        from plone.namedfile.browser import Download
    except ImportError:  # Zope without Plone
        return
    _originals["Download.handle_request_range"] = (Download, Download.handle_request_range)
    Download.handle_request_range = _unsatisfiable_is_416(Download.handle_request_range)


def revert():
    """Restore Zope's own behaviour (tests)."""
    for name, (cls, method) in _originals.items():
        setattr(cls, name.partition(".")[2], method)
    _originals.clear()
