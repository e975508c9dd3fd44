"""Connection protocols: HTTP/1.1 with header limits, HTTP/2 with a fair idle timeout, and
the choice between them (ALPN "h2", or the cleartext h2c connection preface).
"""

from twisted.internet.protocol import Protocol
from twisted.web import http

from .rejection import reject_http1

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

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


if H2Connection is not None:

    class ZopeH2Connection(H2Connection):
        """HTTP/2 connection whose idle timeout waits while streams are open.

        Twisted's HTTP/1.1 channel suspends its idle timeout while a request is handled;
        its HTTP/2 connection does not, so a long publish or a large response to a slow
        reader could be cut. Here the timeout only closes connections with no open stream.
        """

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

    def _switch_to_h2(self):
        """Replace the HTTP/1.1 channel by an HTTP/2 connection on the same transport.

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
