"""TCP listeners whose connections send a write at once when nothing is queued before it.

Twisted's transports never send from ``write``: they queue the bytes, ask the reactor to watch
the socket for writability, send on the next turn of the loop and stop watching again. For a
small response on an idle keep-alive connection that is two ``epoll_ctl`` calls and one more
loop turn per response (each turn gives the GIL up in ``epoll_wait``, to a publisher thread
that may keep it up to the interpreter's switch interval), with the response waiting for that
turn. Here a write on a connection with an empty buffer goes straight to ``send``, as asyncio's
own transports do; only what the kernel does not take is queued, and from there on Twisted's
path is unchanged (backpressure, producers, the closing handshake).
"""

from twisted.internet import defer, interfaces, tcp
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer


class EagerServer(tcp.Server):
    """A server-side TCP connection that sends a write at once when its buffer is empty."""

    def write(self, data):
        if self._can_send_now() and data:
            data = self._send_now(data)
        super().write(data)

    def writeSequence(self, iovec):
        if self._can_send_now() and iovec:
            self.write(b"".join(iovec))
            return
        super().writeSequence(iovec)

    def _can_send_now(self):
        return (self.connected and not self.disconnecting and not self._writeDisconnected
                and not self._tempDataLen and self.offset >= len(self.dataBuffer))

    def _send_now(self, data):
        """Send what the kernel takes of ``data`` now; the rest (all of it on an error, for
        the reactor's next write to find and report as Twisted does) is returned."""
        try:
            sent = self.socket.send(data)
        except OSError:
            return data
        return data[sent:] if sent < len(data) else b""


class EagerPort(tcp.Port):
    """A listening TCP port whose accepted connections are ``EagerServer``."""

    transport = EagerServer


@implementer(interfaces.IStreamServerEndpoint)
class EagerTCPServerEndpoint:
    """A TCP (IPv4 or IPv6, from the interface's address) server endpoint with ``EagerPort``;
    with ``tls`` (CertificateOptions) its connections speak TLS, as Twisted's SSL endpoint."""

    def __init__(self, reactor, port, backlog=50, interface="", tls=None):
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = interface
        self._tls = tls

    def listen(self, factory):
        if self._tls is not None:
            factory = TLSMemoryBIOFactory(self._tls, False, factory)
        return defer.execute(self._start, factory)

    def _start(self, factory):
        port = EagerPort(self._port, factory, self._backlog, self._interface, self._reactor)
        if self._tls is not None:
            port._type = "TLS"  # as Twisted's listenSSL names it in its log lines
        port.startListening()
        return port
