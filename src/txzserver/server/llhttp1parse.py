"""Reading HTTP/1.1 requests with llhttp (httptools): the framing half of ``llhttp1``.

llhttp frames the header fields and the body (Content-Length, chunked). What it does not
see is the request line: we split it ourselves (any method token, as Twisted allowed: Zope
publishes WebDAV and unknown methods; a target with raw non-ASCII bytes) and hand llhttp a
fixed line instead. The bytes are fed in pieces that end where a message can end (the
head's blank line, the declared body length, a chunk line), so the start of the next
pipelined request is known without a pause in the parser. When llhttp refuses a head,
``explain_head`` finds the reason in the bytes with the checks of ``http1.header_error``:
the answers to hostile input are the ones ``HTTP1Channel`` gives.
"""

import re

import httptools

from .http1 import BARE_LF, CHECKED_FIELDS, OBS_FOLD, _tokens, field_error, header_error, target_error
from .leanrequest import LeanRequest, RawHeaders

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: method SP request-target SP HTTP-version CRLF (RFC 9112 3); any token is a method.
REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) (HTTP/1\.[01])\r\n")
MALFORMED = "malformed request"
#: A chunk-size line (with extensions) longer than this is refused, as Twisted refuses it.
MAX_CHUNK_LINE = 1024

# Where the parser is in the byte stream.
LINE = "line"          # before a request line (between requests)
FIELDS = "fields"      # header fields, parsed by llhttp
LENGTH = "length"      # a body of declared length
CHUNKED = "chunked"    # a chunked body
EXPLAIN = "explain"    # llhttp refused a head line: its end is awaited to say why
STOPPED = "stopped"    # nothing more is read: refused, closing, or handed over


class _Refused(Exception):
    """Raised from a parser callback to stop llhttp; the reason is kept on the channel."""


def explain_head(head, version):
    """``(code, reason)`` for a head llhttp refused: bare LF, obs-fold and ``header_error``'s
    checks line by line, else 400 malformed request. ``head`` starts with the request line."""
    headers = RawHeaders()
    lines = head.split(b"\n")
    for raw in lines[1:-1]:  # complete lines after the request line
        if not raw.endswith(b"\r"):
            return 400, BARE_LF
        line = raw[:-1]
        if not line:
            break
        if line[0] in b" \t":
            return 400, OBS_FOLD
        error = header_error(line, version, headers)
        if error is not None:
            return error[0], error[1].decode("latin-1")
        name, _, value = line.partition(b":")
        headers.add(name.lower(), value.strip(b" \t"))
    else:  # llhttp refuses a second length or Host as soon as it has the name
        name = lines[-1].partition(b":")[0].lower()
        if name in CHECKED_FIELDS and lines[-1] != name:
            error = field_error(name, b"chunked" if name == b"transfer-encoding" else b"0",
                                version, headers)
            if error is not None:
                return error[0], error[1].decode("latin-1")
    return 400, MALFORMED



class Framing:
    """The parsing half of ``llhttp1.LLHTTP1Channel`` (mixed into it): bytes in, requests
    out, refusals with their reasons. The channel provides ``settings``, ``connection``,
    ``transport``, ``_parser``, the request queue (``_incoming``, ``_active``, ``_ready``)
    and ``reject``, ``_request_started``, ``_stop_head_timer`` and ``_dispatch``.
    Reactor thread only.
    """

    # Feeding llhttp in pieces that end where a message may end

    def _feed(self, data):
        limit = self.settings.max_header_size
        while data and self._state is not STOPPED:
            state = self._state
            if state is LINE:
                if not self._head_started and self._active is None:
                    self._request_started()
                end = data.find(b"\n")
                if end < 0:
                    if len(data) > limit:
                        return self._too_large()
                    self._partial = data
                    return
                line, data = data[:end + 1], data[end + 1:]
                if line == b"\r\n":
                    continue  # RFC 9112 2.2: an empty line before a request is ignored
                self._start_head(line)
                continue
            if state is EXPLAIN:
                self._head.append(data)
                self._head_size += len(data)
                if b"\n" in data:
                    return self.reject(*explain_head(b"".join(self._head), self._line[2]))
                if self._head_size > limit:
                    return self._too_large()
                return
            if state is FIELDS:
                tail = self._tail
                found = (tail + data[:3]).find(b"\r\n\r\n")
                if found >= 0:
                    n = found + 4 - len(tail)
                else:
                    found = data.find(b"\r\n\r\n")
                    n = found + 4 if found >= 0 else len(data)
                piece, data = data[:n], data[n:]
                self._head_size += n
                if self._head_size > limit:
                    return self._too_large()
                self._head.append(piece)
                self._tail = (tail + piece)[-3:]
                fed = self._fixed_line + piece if self._fixed_line else piece
                self._fixed_line = None
            elif state is LENGTH:
                n = min(len(data), self._left)
                self._left -= n
                fed, data = data[:n], data[n:]
            else:  # CHUNKED: a chunked body ends with a line
                end = data.find(b"\n")
                n = end + 1 if end >= 0 else len(data)
                if self._in_size_line:
                    self._size_line += n
                    if self._size_line > MAX_CHUNK_LINE:
                        return self.reject(400, MALFORMED)
                fed, data = data[:n], data[n:]
            self._head_piece = state is FIELDS
            try:
                self._parser.feed_data(fed)
            except httptools.HttpParserUpgrade as exc:
                data = fed[exc.args[0]:] + data
                self._upgraded()
            except httptools.HttpParserError:
                return self._parse_failed()
            if self._ready and self._active is None and not self._dispatching:
                if self._dispatch(data):
                    return

    def _start_head(self, line):
        match = REQUEST_LINE.fullmatch(line)
        if match is None:
            return self.reject(400, BARE_LF if not line.endswith(b"\r\n") else MALFORMED)
        self._line = match.groups()
        self._head = [line]
        self._head_size = len(line)
        if self._head_size > self.settings.max_header_size:
            return self._too_large()
        self._headers = RawHeaders()
        self._header_count = 0
        self._tail = b"\r\n"
        # llhttp sees a fixed request line: the real one is checked above.
        self._fixed_line = b"PUT / " + self._line[2] + b"\r\n"
        self._state = FIELDS

    def _too_large(self):
        limit = self.settings.max_header_size
        self.reject(431, f"request line and headers exceed {limit} bytes (max-header-size)")

    def _parse_failed(self):
        if self._state is STOPPED:
            return  # refused from a callback, already answered (or owed)
        if self._refusal is not None:
            code, reason, headers = self._refusal
            self._refusal = None
            return self.reject(code, reason, headers)
        if self._state is FIELDS:
            head = b"".join(self._head)
            if not head.endswith(b"\n"):  # refused within a line: say why once it is complete
                self._head = [head]
                self._state = EXPLAIN
                return
            return self.reject(*explain_head(head, self._line[2]))
        self.reject(400, MALFORMED)

    def _upgraded(self):
        """llhttp stops after the head of an upgrade request (Upgrade and Connection: upgrade):
        a body is read on by a new parser given the same framing; the next request too."""
        self._parser = httptools.HttpRequestParser(self)
        request = self._incoming
        if request is None or self._state not in (LENGTH, CHUNKED):
            return  # complete: whether it upgrades is decided when it is answered
        framing = (b"Transfer-Encoding: chunked" if self._state is CHUNKED
                   else b"Content-Length: %d" % self._left)
        self._parser.feed_data(b"PUT / HTTP/1.1\r\n" + framing + b"\r\n\r\n")

    # llhttp callbacks

    def on_header(self, name, value):
        if self._state is not FIELDS:
            return  # trailer fields (ignored, as Twisted does) or a framing head of ours
        self._header_count += 1
        if self._header_count > self.settings.max_headers:
            self._refusal = (431, f"more than {self.settings.max_headers} header lines"
                                  " (max-headers)", ())
            raise _Refused()
        name = name.lower()
        if value[-1:] in (b" ", b"\t"):
            value = value.rstrip(b" \t")
        if name in CHECKED_FIELDS:
            error = field_error(name, value, self._line[2], self._headers)
            if error is not None:
                self._refusal = (error[0], error[1].decode("latin-1"), ())
                raise _Refused()
        self._headers.add(name, value)

    def on_headers_complete(self):
        if self._state is not FIELDS:
            return
        self._stop_head_timer()
        self._head_started = False
        method, target, version = self._line
        headers = self._headers
        if self.connection is not None:
            self.connection.went_busy()
        error = target_error(method, target, version, headers)
        if error is not None:
            self._refusal = (400, error, ())
            raise _Refused()
        persistent = version == b"HTTP/1.1" and (
            b"connection" not in headers.fields or b"close" not in _tokens(headers, b"connection"))
        request = LeanRequest(self, method, target, version, headers, self.settings, persistent)
        self._incoming = request
        if b"transfer-encoding" in headers.fields:
            self._state, length = CHUNKED, None
            self._in_size_line, self._size_line = True, 0
        else:
            lengths = headers.fields.get(b"content-length")
            length = int(lengths[0]) if lengths else 0
            self._state, self._left = LENGTH, length
        request.gotLength(length)
        if self._state is STOPPED:
            raise _Refused()  # refused by its length (413, 503): answered already
        expect = headers.fields.get(b"expect")
        if expect and version == b"HTTP/1.1" and expect[0].lower() == b"100-continue":
            if self._active is None and not self._ready:
                self.transport.write(CONTINUE)
            else:
                request.continue_owed = True

    def on_body(self, data):
        request = self._incoming
        if request is not None:
            request.handleContentChunk(data)
            if self._state is STOPPED:
                raise _Refused()

    def on_chunk_header(self):
        self._in_size_line = False

    def on_chunk_complete(self):
        self._in_size_line, self._size_line = True, 0

    def on_message_complete(self):
        if self._head_piece and (self._state is CHUNKED or (self._state is LENGTH and self._left)):
            return  # llhttp skips the body of an upgrade request: see _upgraded
        request, self._incoming = self._incoming, None
        if request is None:
            return
        if request.content is not None:
            request.content.seek(0)  # read from the start by the resource (Twisted does too)
        self._ready.append(request)
        self._state = LINE if request.persistent else STOPPED  # nothing after a last request
        if self._active is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()

