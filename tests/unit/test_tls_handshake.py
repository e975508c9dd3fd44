"""txzserver.server.negotiate: a TLS handshake must finish within header-timeout."""

from twisted.internet.interfaces import INegotiated
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from .helpers import HOST, PEER, connect, make_site


@implementer(INegotiated)
class TLSTransport(StringTransport):
    """What TLSMemoryBIOProtocol looks like to the protocol it wraps (INegotiated is an
    ITCPTransport), before the handshake has chosen a protocol."""

    negotiatedProtocol = None

    def setTcpNoDelay(self, enabled):
        pass


def _tls_connection():
    site = make_site(h2c=True, header_timeout=10, idle_timeout=60)
    protocol, transport = connect(site, TLSTransport(hostAddress=HOST, peerAddress=PEER))
    return site, protocol, transport


def test_a_handshake_that_never_finishes_is_aborted_after_header_timeout():
    site, protocol, transport = _tls_connection()
    site.reactor.advance(9.9)
    assert not transport.disconnected
    site.reactor.advance(0.2)
    assert transport.disconnected  # aborted: TLS would wait for the handshake to send a 408


def test_a_finished_handshake_stops_the_timer():
    site, protocol, transport = _tls_connection()
    site.reactor.advance(1)
    protocol.handshakeCompleted()
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    site.reactor.advance(30)
    assert not transport.disconnected
    assert transport.value().startswith(b"HTTP/1.1 200")


def test_a_lost_connection_stops_the_timer():
    site, protocol, transport = _tls_connection()
    protocol.connectionLost(None)
    assert not site.reactor.getDelayedCalls() or all(
        call.func != protocol._handshake_timed_out for call in site.reactor.getDelayedCalls())


def test_cleartext_connections_have_no_handshake_timer():
    site = make_site(header_timeout=10)
    protocol, transport = connect(site)
    assert protocol._handshake_timer is None
