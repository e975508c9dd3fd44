"""The UDP side of HTTP/3: the socket of an https listener with ``http3 on`` (same address
and port number, same certificate), routing datagrams by connection id to one ``H3Channel``
(h3.py) per QUIC connection; the QUIC configuration and the Alt-Svc value announcing it.
Reactor thread only.
"""

import errno
import logging

from aioquic.buffer import Buffer
from aioquic.h3.connection import H3_ALPN, ErrorCode
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import (QuicPacketType, encode_quic_version_negotiation,
                                 pull_quic_header)
from twisted.internet import defer, task, udp
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from .connection import Connection
from .h3 import H3Channel
from .quicmtu import BASE, dont_fragment
from .udpsend import SOCKET_BUFFER, DatagramSender, widen_buffers

#: Seconds between looks at the QUIC connections during the shutdown drain.
DRAIN_POLL = 0.05
#: Bytes of a QUIC Initial datagram a client must pad to (RFC 9000 14.1).
SMALLEST_INITIAL = 1200
#: Datagrams one readable event of the QUIC socket takes at most before the loop serves the
#: other sockets. Twisted's UDP port reads 256 KB per event: with a download's acknowledgements
#: (about 50 bytes each) that was thousands of datagrams, each answered by a transmit, while the
#: TCP connections' requests waited (page p99 1-2 s beside eight slow HTTP/3 readers).
READ_BATCH = 128
#: What recvfrom may say of a non-blocking UDP socket that is not an error of ours.
_NOTHING_TO_READ = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ECONNREFUSED})

log = Logger()


def alt_svc(port):
    """The Alt-Svc value that announces HTTP/3 on ``port`` of the same host."""
    return f'h3=":{port}"; ma=86400'


def quic_configuration(listener, settings):
    """The server's QuicConfiguration: the https listener's certificate and key, ALPN "h3",
    the idle timeout of HTTP/1.1 and HTTP/2."""
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN,
                               idle_timeout=settings.idle_timeout,
                               max_datagram_frame_size=None)
    config.load_cert_chain(listener.certificate, listener.private_key)
    return config


class QuicPort(udp.Port):
    """The QUIC socket: at most READ_BATCH datagrams per readable event, and the connections
    that received some transmit once after the batch (``H3Endpoint.batch_ended``), not once per
    datagram. A datagram is read whole up to UDP's largest (Twisted reads 8 KiB), for clients
    that discover a large path MTU too."""

    maxPacketSize = 65535

    def doRead(self):
        self.protocol.batch_started()
        try:
            for _ in range(READ_BATCH):
                try:
                    data, addr = self.socket.recvfrom(self.maxPacketSize)
                except OSError as exc:
                    if exc.errno not in _NOTHING_TO_READ:
                        log.error("reading the QUIC socket failed: {error}", error=exc)
                    return
                try:
                    self.protocol.datagramReceived(data, addr[:2])
                except Exception:
                    log.failure("a QUIC datagram from {addr} failed", addr=addr)
        finally:
            self.protocol.batch_ended()


class H3Endpoint(DatagramProtocol):
    """The UDP socket of one https listener with ``http3 on``: datagrams to their QUIC
    connection by destination connection id; a new connection for a client's padded Initial
    packet (within max-connections, as a TCP connection); Version Negotiation for a version
    aioquic does not speak."""

    draining = False  # shutdown: no new QUIC connections
    _sender = None
    #: channels that received datagrams in the current read batch (QuicPort), in order;
    #: None outside a batch, when a channel transmits at once
    _received = None

    def __init__(self, site, settings, configuration, max_datagram_size=BASE):
        # aioquic logs every stream reset and handshake at INFO: a flood would be a flood of
        # log lines. Its warnings still show.
        logging.getLogger("quic").setLevel(logging.WARNING)
        self.site = site
        self.settings = settings
        self.configuration = configuration
        #: the largest datagram a connection's path MTU discovery may raise it to
        self.max_datagram_size = max_datagram_size
        #: connection id -> H3Channel (a connection has several over its life)
        self.channels = {}

    def startProtocol(self):
        sock = getattr(self.transport, "socket", None)  # Twisted's udp.Port keeps it there
        if sock is None:
            return
        if self.max_datagram_size > BASE and not dont_fragment(sock):
            log.info("QUIC socket: no don't-fragment option on this system; HTTP/3 datagrams"
                     " stay at {base} bytes", base=BASE)
            self.max_datagram_size = BASE
        receive, send = widen_buffers(sock)
        if receive < SOCKET_BUFFER:
            log.info("QUIC socket buffers: receive {receive}, send {send} bytes (fewer than the"
                     " {want} asked for: raise net.core.rmem_max and net.core.wmem_max)",
                     receive=receive, send=send, want=SOCKET_BUFFER)

    def send(self, datagrams):
        """Write a connection's datagrams, (data, addr) pairs, on the UDP socket."""
        if self._sender is None or self._sender.port is not self.transport:
            self._sender = DatagramSender(self.transport)
        self._sender.send(datagrams)

    def batch_started(self):
        self._received = {}

    def batch_ended(self):
        """Each channel that received datagrams in the batch sends once, for all of them."""
        received, self._received = self._received, None
        for channel in received:
            channel.transmit()

    def received_by(self, channel):
        """True when ``channel`` should transmit now; else it is sent after the batch."""
        if self._received is None:
            return True
        self._received[channel] = None
        return False

    def datagramReceived(self, data, addr):
        try:
            header = pull_quic_header(Buffer(data=data),
                                      host_cid_length=self.configuration.connection_id_length)
        except ValueError:
            return  # not QUIC: nothing to answer
        if (header.packet_type != QuicPacketType.VERSION_NEGOTIATION
                and header.version is not None
                and header.version not in self.configuration.supported_versions):
            self.transport.write(encode_quic_version_negotiation(
                source_cid=header.destination_cid, destination_cid=header.source_cid,
                supported_versions=self.configuration.supported_versions), addr)
            return
        channel = self.channels.get(header.destination_cid)
        if channel is None:
            if (header.packet_type != QuicPacketType.INITIAL or len(data) < SMALLEST_INITIAL
                    or self.draining):
                return
            channel = self._open(header, addr)
            if channel is None:
                return
        channel.datagram_received(data, addr)

    def _open(self, header, addr):
        counter = self.site.counter
        peer = f"{addr[0]}:{addr[1]}"
        if counter.full():
            idle = counter.evictable()
            if idle is None:
                log.warn("refusing QUIC connection from {addr}: {n} open connections, none"
                         " idle (max-connections)", addr=peer, n=counter.open)
                counter.refused += 1
                return None
            idle.evict(peer)
        quic = QuicConnection(configuration=self.configuration,
                              original_destination_connection_id=header.destination_cid)
        connection = Connection(self.site, self.settings, counter, self.site.admission)
        connection.opened(None)
        connection.secure = True
        channel = H3Channel(self, quic, addr, connection)
        connection.speak(channel, "h3")
        connection.went_idle()
        self.channels[header.destination_cid] = channel
        self.channels[quic.host_cid] = channel
        return channel

    def forget(self, channel):
        for cid in [cid for cid, known in self.channels.items() if known is channel]:
            del self.channels[cid]

    def close_all(self):
        """Shutdown: close every QUIC connection (CONNECTION_CLOSE, no error)."""
        for channel in set(self.channels.values()):
            channel.close(ErrorCode.H3_NO_ERROR, "server shutting down")
            channel.transmit()

    def drain(self, reactor, timeout, delay=0.0):
        """Reactor 'before shutdown' trigger, HTTP/3's part of the drain (shutdown.py): new
        connections are taken for ``delay`` seconds more (readiness fails meanwhile), then
        every connection gets GOAWAY and no new one is taken; the responses in flight get
        ``timeout`` seconds to be sent and acknowledged, then every connection is closed
        (CONNECTION_CLOSE, no error). The UDP socket stays open until then: closing it with
        the TCP listeners would cut every QUIC connection at once."""
        done = defer.Deferred()
        poll = task.LoopingCall(self._drained, reactor, done)
        poll.clock = reactor

        def goaway():
            self.draining = True
            for channel in set(self.channels.values()):
                channel.drain()
            self._drain_deadline = reactor.seconds() + timeout
            poll.start(DRAIN_POLL, now=True).addErrback(done.errback)

        task.deferLater(reactor, max(delay, 0.0), goaway)
        return done.addCallback(lambda _: poll.stop())

    def _drained(self, reactor, done):
        """Close every connection once all are quiet, or at the drain's deadline."""
        if done.called:
            return
        busy = [channel for channel in set(self.channels.values()) if not channel.quiet()]
        if busy and reactor.seconds() < self._drain_deadline:
            return
        if busy:
            log.warn("shutdown: {n} HTTP/3 connection(s) still busy after the drain time,"
                     " closing them", n=len(busy))
        self.close_all()
        done.callback(None)
