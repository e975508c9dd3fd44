"""Connection protocols: HTTP/1.1 with header limits, HTTP/2 with a fair idle timeout, and
the choice between them (ALPN "h2", the cleartext h2c connection preface, or an HTTP/1.1
request with "Upgrade: h2c").
"""

from types import SimpleNamespace

from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.web import http

from .rejection import reject_http1

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SWITCHING_TO_H2C = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
#: Connection-specific HTTP/1.1 headers, not carried over to the HTTP/2 request (RFC 9113 8.2.2).
HOP_BY_HOP = {b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection",
              b"te", b"transfer-encoding", b"host"}


def _tokens(headers, name):
    return {t.strip().lower() for v in headers.getRawHeaders(name, []) for t in v.split(b",")}


def h2c_upgrade_settings(request):
    """The HTTP2-Settings value when ``request`` may be upgraded to h2c, else None.

    RFC 7540 3.2: "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings" and exactly one
    HTTP2-Settings header. Like Hypercorn we only upgrade requests without a body: a body
    would have to be read over HTTP/1.1 and then replayed as stream 1.
    """
    headers = request.requestHeaders
    settings = headers.getRawHeaders(b"http2-settings", [])
    if (b"h2c" not in _tokens(headers, b"upgrade") or len(settings) != 1
            or not {b"upgrade", b"http2-settings"} <= _tokens(headers, b"connection")):
        return None
    if request.content is not None and request.content.seek(0, 2) > 0:
        return None
    return settings[0]

try:
    from twisted.web._http2 import H2Connection
except ImportError:  # pragma: no cover - h2 is a locked dependency
    H2Connection = None


class LimitedHTTPChannel(http.HTTPChannel):
    """HTTP/1.1 channel answering 431 (not a bare 400) when the head of a request is too big."""

    #: Set by rejection.reject_http1: the error is sent and the connection closing, so
    #: whatever the client still sends (a TLS transport keeps delivering) is ignored.
    rejected = False

    def dataReceived(self, data):
        if self.rejected:
            return
        super().dataReceived(data)

    def lineReceived(self, line):
        self._txz_header_bytes = getattr(self, "_txz_header_bytes", 0) + len(line) + 2
        if self._txz_header_bytes > self.totalHeadersSize:
            reject_http1(self, 431, f"request line and headers exceed {self.totalHeadersSize} bytes"
                                    " (max-header-size)")
            return
        if line == b"":
            self._txz_header_bytes = 0
        return super().lineReceived(line)

    def lineLengthExceeded(self, line):
        reject_http1(self, 431, f"a request line or header exceeds {self.MAX_LENGTH} bytes"
                                " (max-header-size)")

    def headerReceived(self, line):
        if self._receivedHeaderCount >= self.maxHeaders:
            reject_http1(self, 431, f"more than {self.maxHeaders} header lines (max-headers)")
            return False
        return super().headerReceived(line)

    def _respondToBadRequestAndDisconnect(self):
        reject_http1(self, 400, "malformed request")

    def allContentReceived(self):
        owner = getattr(self, "owner", None)
        request = self.requests[-1] if self.requests else None
        if (owner is not None and owner.h2c and len(self.requests) == 1 and self._version == b"HTTP/1.1"
                and not self._handlingRequest):
            settings = h2c_upgrade_settings(request)
            if settings is not None:
                self._upgrade_to_h2c(owner, request, settings)
                return
        super().allContentReceived()

    def _upgrade_to_h2c(self, owner, request, settings):
        """Answer 101 and let an HTTP/2 connection answer ``request`` as its stream 1."""
        headers = [(b":method", self._command), (b":scheme", b"http"), (b":path", self._path),
                   (b":authority", request.getHeader(b"host") or b"")]
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() not in HOP_BY_HOP:
                headers.extend((name.lower(), value) for value in values)
        rest, self._buffer = self._buffer, b""  # the client's preface may already be here
        self.requests.remove(request)
        self.transport.write(SWITCHING_TO_H2C)
        owner._switch_to_h2(upgrade=(settings, headers))
        if rest:
            owner.channel.dataReceived(rest)


if H2Connection is not None:

    class ZopeH2Connection(H2Connection):
        """HTTP/2 connection whose idle timeout waits while streams are open.

        Twisted's HTTP/1.1 channel suspends its idle timeout while a request is handled;
        its HTTP/2 connection does not, so a long publish or a large response to a slow
        reader could be cut. Here the timeout only closes connections with no open stream.
        """

        #: (HTTP2-Settings value, request headers) when made by "Upgrade: h2c".
        upgrade = None

        def connectionMade(self):
            if self.upgrade is None:
                return super().connectionMade()
            # As H2Connection.connectionMade, but the upgraded request becomes stream 1.
            settings, headers = self.upgrade
            if ITCPTransport.providedBy(self.transport):
                self.transport.setTcpNoDelay(True)
            self.setTimeout(self.timeOut)
            self.conn.initiate_upgrade_connection(settings)
            self.transport.write(self.conn.data_to_send())
            self._requestReceived(SimpleNamespace(stream_id=1, headers=headers))
            self._requestEnded(SimpleNamespace(stream_id=1))

        def timeoutConnection(self):
            if self.streams:
                # The timer has fired and is gone: resetTimeout() would do nothing and the
                # connection would never time out again. Start a new one.
                self.setTimeout(self.timeOut)
                return
            super().timeoutConnection()

        def _requestDataReceived(self, event):
            # A stream we rejected early (413) may still receive DATA frames in flight.
            if event.stream_id in self.streams:
                super()._requestDataReceived(event)
            else:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

        def _requestEnded(self, event):
            if event.stream_id in self.streams:
                super()._requestEnded(event)


class NegotiatingChannel(Protocol):
    """Speak HTTP/1.1 or HTTP/2 on one connection, chosen from its first bytes.

    HTTP/2 when TLS negotiated "h2" by ALPN, or (when ``h2c`` is on) when the client sent
    the HTTP/2 connection preface in cleartext ("prior knowledge"). Everything else is
    HTTP/1.1. Attributes set by the Site/HTTPFactory are passed to the chosen channel.
    """

    h2c = False
    requestFactory = None
    site = None
    timeOut = None
    callLater = None
    maxHeaders = 200
    totalHeadersSize = 64 * 1024

    def __init__(self):
        self._channel = None
        self._decided = False
        self._buffer = b""

    # IProtocol

    def makeConnection(self, transport):
        self._channel = self._configure(LimitedHTTPChannel())
        self._channel.maxHeaders = self.maxHeaders
        self._channel.totalHeadersSize = self.totalHeadersSize
        self._channel.MAX_LENGTH = self.totalHeadersSize
        Protocol.makeConnection(self, transport)
        self._channel.makeConnection(transport)

    def dataReceived(self, data):
        if self._decided:
            self._channel.dataReceived(data)
            return
        data = self._buffer + data
        protocol = _negotiated_protocol(self.transport)
        if protocol == b"h2":
            self._decide(data, h2=True)
        elif self.h2c and H2_PREFACE.startswith(data[: len(H2_PREFACE)]):
            if len(data) < len(H2_PREFACE):
                self._buffer = data  # wait for the rest of a possible preface
                return
            self._decide(data, h2=True)
        else:
            self._decide(data, h2=False)

    def connectionLost(self, reason):
        if self._channel is not None:
            self._channel.connectionLost(reason)

    def detach(self):
        """The connection now belongs to another protocol (a WebSocket): forget the channel.

        Returns a callable the new protocol calls once when the connection is lost.
        """
        self._channel = None
        return lambda: None

    # Helpers

    def _configure(self, channel):
        channel.requestFactory = self.requestFactory
        channel.site = self.site
        channel.factory = self.factory
        channel.timeOut = self.timeOut
        channel.callLater = self.callLater
        channel.owner = self
        return channel

    def _decide(self, data, h2):
        self._decided = True
        self._buffer = b""
        if h2:
            self._switch_to_h2()
        self._channel.dataReceived(data)

    def _switch_to_h2(self, upgrade=None):
        """Replace the HTTP/1.1 channel by an HTTP/2 connection on the same transport.

        ``upgrade`` is (HTTP2-Settings, request headers) for "Upgrade: h2c".

        The one place that touches HTTPChannel's private ``_networkProducer``: the HTTP/1.1
        channel registered itself as the transport's producer and must let go first.
        """
        if H2Connection is None:
            raise RuntimeError("HTTP/2 requested but the h2 package is not installed")
        old = self._channel
        old._networkProducer.unregisterProducer()
        old.setTimeout(None)
        # The site's reactor, not the global one: H2Connection schedules its sending loop on it.
        reactor = getattr(self.site, "reactor", None)
        self._channel = self._configure(ZopeH2Connection(reactor=reactor))
        self._channel.upgrade = upgrade
        self._channel.makeConnection(self.transport)
        old._networkProducer.registerProducer(self._channel, True)

    @property
    def channel(self):
        """The HTTP/1.1 or HTTP/2 protocol currently in charge (for tests and logging)."""
        return self._channel


def _negotiated_protocol(transport):
    try:
        return transport.negotiatedProtocol
    except AttributeError:
        return None


__all__ = ["LimitedHTTPChannel", "NegotiatingChannel", "H2_PREFACE"]
