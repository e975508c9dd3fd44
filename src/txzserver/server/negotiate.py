"""Which protocol speaks on a connection: HTTP/2 by ALPN "h2", by the cleartext preface (h2c
prior knowledge) or by "Upgrade: h2c" on an HTTP/1.1 request; HTTP/1.1 otherwise.

Protocol switching in the order Hypercorn uses: ALPN first, then the preface, then the
upgrade (only for requests without a body, see ``http1.h2c_upgrade_offer``).
"""

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from .errors import peer_of
from .http1 import HTTP1Channel
from .http2 import H2Channel
from .llhttp1 import LLHTTP1Channel

log = Logger()

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SWITCHING_TO_H2C = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


@implementer(IHandshakeListener)
class NegotiatingProtocol(Protocol):
    """Speak HTTP/1.1 or HTTP/2 on one connection, chosen from its first bytes.

    Built by ``ZopeSite.buildProtocol`` with the connection's ``Connection`` (connection.py:
    its site, settings, slot and publish queue) and whether this listener speaks h2c. The
    channel it builds is handed to the connection, which keeps the one in charge.

    On a TLS listener the handshake must finish within header-timeout, or the connection is
    aborted. The HTTP/1.1 channel's own header-timeout cannot close it: its 408 waits in the
    TLS layer for a handshake that never comes, and TLS closes only after sending it
    (a client that sent nothing, or a ClientHello and then silence, kept its connection for
    idle-timeout plus Twisted's abortTimeout, 75 s by default).
    """

    _handshake_timer = None

    def __init__(self, connection, h2c=False):
        self.connection = connection
        self.site = connection.site
        self.factory = connection.site
        self.settings = connection.settings
        self.h2c = h2c
        self._decided = False
        self._pending = b""

    # IProtocol

    def makeConnection(self, transport):
        self.connection.opened(transport)  # holds a slot from here on
        if self.connection.secure:  # TLS: its handshake comes first
            self._handshake_timer = self.site.reactor.callLater(
                self.settings.header_timeout, self._handshake_timed_out)
        # http1-parser: llhttp (llhttp1.py) or Twisted's HTTPChannel (http1.py)
        http1 = LLHTTP1Channel if self.settings.http1_parser == "llhttp" else HTTP1Channel
        channel = http1(self.settings, self.connection,
                        on_h2c_upgrade=self._upgrade_to_h2c if self.h2c else None)
        self.connection.speak(channel, "http/1.1")
        Protocol.makeConnection(self, transport)
        channel.makeConnection(transport)

    def dataReceived(self, data):
        if self._decided:
            self.channel.dataReceived(data)
            return
        data = self._pending + data
        if _negotiated_protocol(self.transport) == b"h2":
            self._decide(data, h2=True)
        elif self.h2c and H2_PREFACE.startswith(data[: len(H2_PREFACE)]):
            if len(data) < len(H2_PREFACE):
                self._pending = data  # wait for the rest of a possible preface
                return
            self._decide(data, h2=True)
        else:
            self._decide(data, h2=False)

    def connectionLost(self, reason):
        self._stop_handshake_timer()
        channel = self.channel
        self.connection.closed()  # the slot is free (once; an evicted one freed it already)
        if channel is not None:
            channel.connectionLost(reason)

    # IHandshakeListener (TLS listeners)

    def handshakeCompleted(self):
        self._stop_handshake_timer()

    def _handshake_timed_out(self):
        self._handshake_timer = None
        log.info("closing connection from {peer}: no TLS handshake within {timeout:g} seconds"
                 " (header-timeout)", peer=peer_of(self.transport),
                 timeout=self.settings.header_timeout)
        self.transport.abortConnection()

    def _stop_handshake_timer(self):
        if self._handshake_timer is not None:
            if self._handshake_timer.active():
                self._handshake_timer.cancel()
            self._handshake_timer = None

    @property
    def channel(self):
        """The HTTP/1.1 or HTTP/2 protocol currently in charge (None after a WebSocket
        hand-off)."""
        return self.connection.channel

    # Helpers

    def _decide(self, data, h2):
        self._decided = True
        self._pending = b""
        if h2:
            self._switch_to_h2()
        self.channel.dataReceived(data)

    def _upgrade_to_h2c(self, offer, headers, rest):
        """Answer 101 and let an HTTP/2 connection answer the request as its stream 1."""
        self.transport.write(SWITCHING_TO_H2C)
        self._switch_to_h2(upgrade=(offer, headers))
        if rest:
            self.channel.dataReceived(rest)

    def _switch_to_h2(self, upgrade=None):
        """Replace the HTTP/1.1 channel by an HTTP/2 connection on the same transport."""
        network = self.channel.release_transport()
        channel = H2Channel(self.settings, connection=self.connection, upgrade=upgrade)
        self.connection.speak(channel, "h2" if self.connection.secure else "h2c")
        channel.makeConnection(self.transport)
        network.registerProducer(channel, True)


def _negotiated_protocol(transport):
    try:
        return transport.negotiatedProtocol
    except AttributeError:
        return None
