"""txzserver.zope.ranges (Range fixes) and the UTF-8 path check of txzserver.zope.publish.

The real-server counterparts are in tests/integration/test_http1_hostile.py.
"""

import pytest
from zExceptions import BadRequest
from ZPublisher.httpexceptions import HTTPExceptionHandler

from txzserver.zope.publish import utf8_paths_only
from txzserver.zope.ranges import (
    MAX_RANGES, _bounded_ranges, _unsatisfiable_is_416, ranges_to_ignore, satisfiable_ranges,
)

SIZE = 1000


@pytest.mark.parametrize("header, ignore", [
    (None, False),
    ("bytes=abc", False),  # invalid: Zope ignores it anyway
    ("bytes=0-9", False),
    ("bytes=0-9,10-19,500-", False),
    ("bytes=0-9,5-14", True),  # overlapping
    ("bytes=0-,0-", True),
    ("bytes=-100,900-", True),  # the same last 100 bytes twice
    ("bytes=" + ",".join(f"{n}-{n}" for n in range(0, 2 * MAX_RANGES, 2)), False),
    ("bytes=" + ",".join(f"{n}-{n}" for n in range(0, 2 * MAX_RANGES + 2, 2)), True),
    ("bytes=" + ",".join(["0-"] * 1000), True),
])
def test_ranges_to_ignore(header, ignore):
    assert ranges_to_ignore(header, SIZE) is ignore


def test_satisfiable_ranges():
    assert satisfiable_ranges("bytes=0-9", SIZE) == [(0, 10)]
    assert satisfiable_ranges("bytes=1000-", SIZE) == []
    assert satisfiable_ranges("bytes=-0", SIZE) == []
    assert satisfiable_ranges("bytes=5-2", SIZE) is None


class Response:
    def __init__(self):
        self.status, self.headers = 200, {}

    def setStatus(self, status):
        self.status = status

    def setHeader(self, name, value):
        self.headers[name] = value


class Request:
    def __init__(self, **headers):
        self.headers = headers
        self.response = Response()

    def getHeader(self, name, default=None):
        return self.headers.get(name.replace("-", "_"), default)

    get_header = getHeader


class PloneFile:
    def getSize(self):
        return SIZE


class Download:
    """plone.namedfile's Download.handle_request_range, as far as the fix sees it."""

    def __init__(self, request, answer):
        self.request, self.answer = request, answer

    @_unsatisfiable_is_416
    def handle_request_range(self, file):
        return self.answer


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=-0", "bytes=2000-3000,1000-"])
def test_unsatisfiable_range_on_a_plone_file_gets_416(header):
    view = Download(Request(Range=header), {})
    assert view.handle_request_range(PloneFile()) == {"start": 0, "end": 0}
    assert view.request.response.status == 416
    assert view.request.response.headers == {"Content-Range": f"bytes */{SIZE}",
                                             "Content-Length": 0}


@pytest.mark.parametrize("request_, answer", [
    (Request(), {}),  # no Range
    (Request(Range="bytes=5-2"), {}),  # invalid: ignored, the whole file
    (Request(Range="bytes=0-9,20-29"), {}),  # multipart: not done, the whole file
    (Request(Range="bytes=1000-", If_Range='"etag"'), {}),  # If-Range: the whole file
    (Request(Range="bytes=0-9"), {"start": 0, "end": 10}),  # served by plone.namedfile
])
def test_other_ranges_on_a_plone_file_are_left_alone(request_, answer):
    view = Download(request_, answer)
    assert view.handle_request_range(PloneFile()) == answer
    assert view.request.response.status == 200


class OFSFile:
    size = SIZE
    handled = None

    @_bounded_ranges
    def _range_request_handler(self, REQUEST, RESPONSE):
        self.handled = REQUEST
        return True


@pytest.mark.parametrize("headers, served_by_zope", [
    ({"Range": "bytes=0-9,20-29"}, True),
    ({"Range": "bytes=0-9,5-14"}, False),
    ({"Request_Range": "bytes=" + ",".join(["0-"] * 1000)}, False),
    ({"Range": "bytes=" + ",".join(f"{n}-{n}" for n in range(0, 2000, 2))}, False),
])
def test_many_or_overlapping_ranges_on_an_ofs_file_are_ignored(headers, served_by_zope):
    ofs_file = OFSFile()
    request = Request(**headers)
    assert ofs_file._range_request_handler(request, request.response) is served_by_zope
    assert (ofs_file.handled is request) is served_by_zope


@pytest.mark.parametrize("path, status", [("/Plone/caf\xc3\xa9", 200), ("/\xc0\xaf..", 400),
                                          ("/Plone/\xff\xfe", 400)])
def test_paths_that_are_not_utf8_get_400(path, status):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    seen = []
    app = HTTPExceptionHandler(utf8_paths_only(app))
    app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, h, exc_info=None: seen.append(s))
    assert int(seen[0].split()[0]) == status


def test_the_check_raises_bad_request_before_zope_is_called():
    def zope(environ, start_response):
        raise AssertionError("Zope called")
    with pytest.raises(BadRequest, match="not UTF-8"):
        utf8_paths_only(zope)({"PATH_INFO": "/\xc0\xaf"}, None)
