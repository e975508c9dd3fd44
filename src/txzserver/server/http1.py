"""HTTP/1.1: Twisted's channel with our limits, errors that say why, and the h2c upgrade offer.

Every private HTTPChannel name used by txzserver is used here, and listed in
PRIVATE_TWISTED_NAMES (``tests/unit/test_twisted_private.py`` fails, naming the attribute,
when a Twisted upgrade removes one).
"""

from twisted.internet import tcp
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger
from twisted.web import http

from .errors import HTTP1Refusals
from .request import ZopeRequest

#: HTTPChannel internals this module relies on (checked by a unit test).
PRIVATE_TWISTED_NAMES = (
    "_receivedHeaderCount",               # header lines of the request being read
    "_respondToBadRequestAndDisconnect",  # Twisted's bare 400, replaced by reject()
    "_networkProducer",                   # the transport's producer registration (hand-offs)
    "_buffer",                            # bytes received after the request (h2c upgrade)
    "_command", "_path", "_version",      # the request line being handled
    "_handlingRequest",                   # a request is being answered
    "_busyReceiving",                     # LineReceiver is inside its parsing loop
    "_waitingForTransport",               # the transport paused the channel (sendfile loan)
)

log = Logger()

BARE_LF = "bare LF in request head (lines must end in CRLF)"
OBS_FOLD = "obs-fold: a header line starts with whitespace (line folding is refused)"

#: Control characters no header value may contain: CTLs but HTAB (RFC 9110 5.5).
CONTROL_CHARACTERS = bytes(range(0x09)) + bytes(range(0x0a, 0x20)) + b"\x7f"
#: Longer Content-Length values are refused before int() sees them (Python refuses to
#: convert more than 4300 digits: a ValueError out of the parser, a traceback, no answer).
MAX_LENGTH_DIGITS = 18

#: Connection-specific HTTP/1.1 headers, not carried over to the HTTP/2 request (RFC 9113 8.2.2).
HOP_BY_HOP = {b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection",
              b"te", b"transfer-encoding", b"host"}


def _tokens(headers, name):
    return {t.strip().lower() for v in headers.getRawHeaders(name, []) for t in v.split(b",")}


def header_error(line, version, headers):
    """``(code, reason)`` when the header ``line`` cannot follow ``headers``, else None.

    Checked before Twisted parses the line; each refusal closes the connection. 400 for:

    - a control character in the value (RFC 9110 5.5: CR, LF, NUL MUST be refused or
      replaced; Twisted catches only those three, not e.g. \\x01 or DEL);
    - Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1: its framing is faulty);
    - a Transfer-Encoding other than exactly ``chunked`` (RFC 9112 6.3 item 4: chunked not
      the final coding means the length cannot be determined; Twisted ignored ``identity``
      and parsed the body as the next request: request smuggling);
    - Content-Length together with Transfer-Encoding, either order (RFC 9112 6.3 item 3
      lets the server reject it, and it is a smuggling attempt), or a second
      Transfer-Encoding (chunked twice, RFC 9112 6.1);
    - a second Content-Length, a list ("5, 5") or anything but digits ("+5", "-1")
      (RFC 9112 6.3 item 5; RFC 9110 8.6 lets the list be refused);
    - a second Host (RFC 9112 3.2: MUST answer 400).

    And 413 for a Content-Length of more than 18 digits (RFC 9110 8.6: guard against
    overflow; Twisted's int() raised ValueError at 4300 digits: a traceback, no answer).
    """
    name, _, value = line.partition(b":")
    name = name.lower()
    value = value.strip(b" \t")
    if len(value.translate(None, CONTROL_CHARACTERS)) != len(value):
        return 400, b"control character in the value of header %s (RFC 9110 5.5)" % name
    return field_error(name, value, version, headers)


#: The header names ``field_error`` has anything to say about.
CHECKED_FIELDS = frozenset({b"transfer-encoding", b"content-length", b"host"})


def field_error(name, value, version, headers):
    """``header_error`` for a field already split: lower-case ``name``, stripped ``value``
    free of control characters (the llhttp channel's parser refuses those itself)."""
    if name == b"transfer-encoding":
        if version != b"HTTP/1.1":
            return 400, b"Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)"
        if value.lower() != b"chunked":
            return 400, b"Transfer-Encoding %s: only chunked is accepted (RFC 9112 6.3)" % value[:40]
    if name in (b"transfer-encoding", b"content-length"):
        if headers.hasHeader(b"transfer-encoding") or headers.hasHeader(b"content-length"):
            return 400, b"more than one Content-Length or Transfer-Encoding (RFC 9112 6.3)"
    if name == b"content-length":
        if not value.isdigit():
            return 400, b"Content-Length %s is not one decimal number (RFC 9112 6.3)" % value[:40]
        if len(value) > MAX_LENGTH_DIGITS:
            return 413, b"Content-Length of %d digits is too large (RFC 9110 8.6)" % len(value)
    if name == b"host" and headers.hasHeader(b"host"):
        return 400, b"more than one Host header (RFC 9112 3.2)"
    return None


def target_error(method, target, version, headers):
    """Why the request line's target (with the headers) cannot be served (str), or None.

    RFC 9112 3.2: an HTTP/1.1 request without Host gets 400. RFC 9112 3.2.3/3.2.4: the
    authority form belongs to CONNECT and the asterisk form to OPTIONS; this server is no
    proxy, so CONNECT is refused, and a target must be origin-form ("/...") or absolute
    http(s) (3.2.2), or ``*`` for OPTIONS.
    """
    if version == b"HTTP/1.1" and not headers.hasHeader(b"host"):
        return "request without a Host header (RFC 9112 3.2)"
    if method == b"CONNECT":
        return "CONNECT: this server is not a proxy (RFC 9112 3.2.3)"
    if target.startswith(b"/") or (target == b"*" and method == b"OPTIONS"):
        return None
    scheme, sep, _ = target.partition(b"://")
    if sep and scheme.lower() in (b"http", b"https"):
        return None
    return "request-target is neither a path nor an http(s) URL (RFC 9112 3.2)"


def h2c_upgrade_offer(request):
    """The HTTP2-Settings header value when ``request`` asks for h2c, else None.

    RFC 7540 3.2: "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings" and exactly one
    HTTP2-Settings header. Like Hypercorn we only upgrade requests without a body: a body
    would have to be read over HTTP/1.1 and then replayed as stream 1.
    """
    headers = request.requestHeaders
    offered = headers.getRawHeaders(b"http2-settings", [])
    if (b"h2c" not in _tokens(headers, b"upgrade") or len(offered) != 1
            or not {b"upgrade", b"http2-settings"} <= _tokens(headers, b"connection")):
        return None
    if request.content is not None and request.content.seek(0, 2) > 0:
        return None
    return offered[0]


class HTTP1Channel(HTTP1Refusals, http.HTTPChannel):
    """One HTTP/1.1 connection, limited by the ``ServerSettings`` it is built with.

    Requests it makes are ``ZopeRequest``s that know this channel as their protocol, so a
    request refused while it is read (413, 431) is answered here: error, then close.
    ``on_h2c_upgrade(http2_settings, headers, rest)`` is given when the listener speaks h2c.
    Its ``connection`` (a ``connection.Connection``, None for a channel built alone in a test)
    gives it the site and the reactor, and is told when it reads a head, is busy or idle.
    """

    #: Set by reject_request: the error is sent and the connection closing, so whatever the
    #: client still sends (a TLS transport keeps delivering) is ignored.
    rejected = False

    def __init__(self, settings, connection=None, on_h2c_upgrade=None):
        super().__init__()
        self.settings = settings
        self.connection = connection
        self.on_h2c_upgrade = on_h2c_upgrade
        if connection is not None:
            self.site = self.factory = connection.site
            self.callLater = connection.reactor.callLater
        self._head_bytes = 0
        #: No byte of the next request yet: idle (a fresh connection, or after a response).
        self._awaiting_request = True
        #: The header-timeout call while a request head is being read, else None.
        self._head_timer = None
        #: Between a request's head and the end of its body.
        self._receiving_body = False
        self._host = None

    # What HTTPChannel reads as attributes, answered from the settings (not copied)

    @property
    def maxHeaders(self):
        return self.settings.max_headers

    @property
    def totalHeadersSize(self):
        return self.settings.max_header_size

    @property
    def MAX_LENGTH(self):  # LineReceiver: the longest line accepted
        return self.settings.max_header_size

    def getHost(self):
        """The local address, asked of the socket once per connection: Twisted asks for every
        request (a getsockname call, which gives the GIL to a publisher thread and waits to
        get it back)."""
        if self._host is None:
            self._host = self.transport.getHost()
        return self._host

    def writeHeaders(self, version, code, reason, headers):
        """The response head as one string in one write (Twisted writes a sequence of
        four pieces per header line, each checked and buffered on its own)."""
        lines = [b"%s %s %s\r\n" % (version, code, reason)]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"\r\n")
        self.transport.write(b"".join(lines))

    def requestFactory(self, channel, queued):
        """Called by HTTPChannel as ``self.requestFactory(self, queued)``."""
        return ZopeRequest(channel, queued, settings=self.settings, protocol=self)

    # IProtocol

    def connectionMade(self):
        super().connectionMade()
        self.setTimeout(self.settings.idle_timeout)  # TimeoutMixin keeps it from here on
        # Counted from the opening: a client that connects and sends nothing (or the start of
        # a TLS handshake, or of an HTTP/2 preface) is cut after header-timeout too.
        self._start_head_timer()
        self._went_idle()

    def connectionLost(self, reason):
        self._stop_head_timer()
        super().connectionLost(reason)

    # Rejection

    def reject_request(self, request, code, reason, headers=()):
        """Answer ``code`` with ``reason`` and close: we cannot know where the next request starts."""
        self.reject(code, reason, headers)

    def reject(self, code, reason, headers=()):
        if self.rejected:
            return
        self._send_error(code, reason, headers)
        self.loseConnection()

    def close_idle(self):
        """Close this connection, idle between requests: no response is owed to anybody;
        one still reading a request head is told so (408).

        The idle timeout stays armed: if the transport cannot close cleanly (a client that
        does not read), ``timeoutConnection`` aborts it later.
        """
        if not self._awaiting_request and self._head_timer is not None:
            self.reject(408, "request head still incomplete: the connection was closed to make"
                             " room for another (max-connections)")
            return
        self.rejected = True  # whatever the client sends meanwhile is ignored
        self._stop_head_timer()
        self.loseConnection()

    # The request head: header-timeout, and whether the connection is idle

    def _request_started(self):
        """The first byte of a request arrived: the head is timed, and the connection is
        reading it until allHeadersReceived (then busy)."""
        self._awaiting_request = False
        self._start_head_timer()
        if self.connection is not None:
            self.connection.reading_head()

    def _went_idle(self):
        if self.connection is not None:
            self.connection.went_idle()

    def _start_head_timer(self):
        if self._head_timer is None:
            self._head_timer = self.callLater(self.settings.header_timeout, self._head_timed_out)

    def _stop_head_timer(self):
        if self._head_timer is not None:
            if self._head_timer.active():
                self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self):
        self._head_timer = None
        self.reject(408, f"request line and headers not received within"
                         f" {self.settings.header_timeout:g} seconds (header-timeout)")

    # Parsing, with limits

    def dataReceived(self, data):
        if self.rejected:
            return
        if self._awaiting_request and data:
            self._request_started()
        outermost = not self._busyReceiving
        super().dataReceived(data)
        # LineReceiver splits at CRLF only and would wait forever for one; what it kept
        # in line mode is a partial head line, and a LF in it is a bare one (RFC 9112 2.2
        # lets us refuse it). Checked once the outermost parsing loop is done.
        if outermost and self.line_mode and b"\n" in self._buffer and not self.rejected:
            self.reject(400, BARE_LF)

    def lineReceived(self, line):
        if self._awaiting_request:  # a pipelined request, parsed in the same loop
            self._request_started()
        if b"\n" in line:
            self.reject(400, BARE_LF)
            return
        self._head_bytes += len(line) + 2
        if self._head_bytes > self.settings.max_header_size:
            self.reject(431, f"request line and headers exceed {self.settings.max_header_size} bytes"
                             " (max-header-size)")
            return
        if line == b"":
            self._head_bytes = 0
        elif line[0] in b" \t":  # RFC 9112 5.2 (obs-fold) and 2.2 (whitespace before a header)
            self.reject(400, OBS_FOLD)
            return
        return super().lineReceived(line)

    def lineLengthExceeded(self, line):
        self.reject(431, f"a request line or header exceeds {self.MAX_LENGTH} bytes (max-header-size)")

    def headerReceived(self, line):
        if self._receivedHeaderCount >= self.settings.max_headers:
            self.reject(431, f"more than {self.settings.max_headers} header lines (max-headers)")
            return False
        error = header_error(line, self._version, self.requests[-1].requestHeaders)
        if error is not None:
            code, reason = error
            self.reject(code, reason.decode("latin-1"))
            return False
        return super().headerReceived(line)

    def _respondToBadRequestAndDisconnect(self):
        self.reject(400, "malformed request")

    def allHeadersReceived(self):
        self._stop_head_timer()  # the body is bound by the idle timeout only
        if self.connection is not None:
            self.connection.went_busy()
        error = target_error(self._command, self._path, self._version,
                             self.requests[-1].requestHeaders)
        if error is not None:
            self.reject(400, error)  # allContentReceived, called next for no body, sees it
            return
        self._receiving_body = True
        super().allHeadersReceived()

    def checkPersistence(self, request, version):
        """Twisted's, reading Connection as the comma-separated list it is (RFC 9110 7.6.1).

        Twisted splits only the first Connection line at spaces, so ``keep-alive,close`` (or
        ``close`` on a second line) kept the connection open that the client asked to close.
        """
        if version == b"HTTP/1.1" and b"close" in _tokens(request.requestHeaders, b"connection"):
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            return False
        return super().checkPersistence(request, version)

    def timeoutConnection(self):
        """idle-timeout: in the middle of a request body the client is told, 408 (RFC 9110
        15.5.9), before Twisted closes the connection (and aborts it if it does not close)."""
        if self._receiving_body and not self.rejected:
            self._send_body_timeout()
        super().timeoutConnection()

    def requestDone(self, request):
        """The response is complete: idle, unless the next request has begun already."""
        self._awaiting_request = True
        super().requestDone(request)  # replays pipelined bytes through dataReceived
        if not self.persistent or self.rejected:
            return
        if self._awaiting_request and self._buffer:
            self._request_started()  # parsed on by the loop that answered this one
        elif self._awaiting_request:
            self._went_idle()

    def allContentReceived(self):
        self._receiving_body = False
        if self.rejected:  # refused in allHeadersReceived: Twisted still calls this
            return
        request = self.requests[-1] if self.requests else None
        if (self.on_h2c_upgrade is not None and len(self.requests) == 1
                and self._version == b"HTTP/1.1" and not self._handlingRequest):
            offer = h2c_upgrade_offer(request)
            if offer is not None:
                self._upgrade_to_h2c(request, offer)
                return
        super().allContentReceived()

    def _upgrade_to_h2c(self, request, offer):
        """Hand ``request`` (as HTTP/2 headers) and the bytes after it to ``on_h2c_upgrade``."""
        headers = [(b":method", self._command), (b":scheme", b"http"), (b":path", self._path),
                   (b":authority", request.getHeader(b"host") or b"")]
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() not in HOP_BY_HOP:
                headers.extend((name.lower(), value) for value in values)
        rest, self._buffer = self._buffer, b""  # the client's preface may already be here
        self.requests.remove(request)
        self.on_h2c_upgrade(offer, headers, rest)

    # Hand-offs (to HTTP/2 after h2c, to a WebSocket protocol)

    def release_transport(self):
        """Stop the idle timer and unregister from the transport; return its producer registrar.

        The channel registered itself as the transport's producer when it connected; a
        protocol taking over the connection registers itself with the returned object.
        """
        self.setTimeout(None)
        self._stop_head_timer()
        network = self._networkProducer
        network.unregisterProducer()
        return network

    # os.sendfile of a response body (server/streaming.py, server/sendfile.py)

    def lend_plain_transport(self):
        """The plain TCP transport under this connection, lent to a producer that writes
        the rest of the current response straight to its socket (os.sendfile); None when
        the bytes cannot go to the socket as they are (TLS).

        The channel stops being the transport's producer until ``take_back_transport``;
        the borrower registers itself instead and nothing is written through the channel
        meanwhile (the response head is written before the loan).
        """
        transport = self.transport
        if not isinstance(transport, tcp.Connection) or ISSLTransport.providedBy(transport):
            return None
        self._networkProducer.unregisterProducer()
        return transport

    def take_back_transport(self):
        """The borrower is done: the channel is the transport's producer again, resumed if
        the transport had paused it before the loan (its buffer has drained since)."""
        self._networkProducer.registerProducer(self, True)
        if self._waitingForTransport:
            self.resumeProducing()
