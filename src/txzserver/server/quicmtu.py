"""Path MTU discovery for HTTP/3 (RFC 9000 14.3, RFC 8899): datagrams as large as the path takes.

aioquic sends every datagram at 1,200 bytes, QUIC's smallest, and its work per datagram
(building, encrypting and tracking a packet: about 20 us of Python) is what caps an HTTP/3
download, at some 30 s of the reactor thread per GiB. Most paths carry more: 1,452 bytes over
Ethernet, 8,952 with jumbo frames, 64 KiB on loopback. Once a connection has sent
``START_AFTER`` bytes (a page's connection is not worth the probes) it probes, one size of
``LADDER`` at a time: a datagram of that size holding only PING and PADDING. The size whose
probe is acknowledged is used from then on; a size lost ``MAX_PROBES`` times ends the search
(RFC 8899's MAX_PROBES). Never above the listener's ``http3-max-datagram-size`` nor the
peer's ``max_udp_payload_size``. A probe is not in flight for congestion control: its loss
says nothing of congestion (RFC 9000 14.4). The UDP socket sets the don't-fragment bit
(``dont_fragment``), so that a router drops a datagram too large for it instead of cutting it
up. When a connection on a raised size stops being acknowledged (``BLACK_HOLE_PTOS`` probe
timeouts in a row: the path changed), it falls back to 1,200 bytes and probes no more. A
client that moves (its datagrams come from a new address) starts again at 1,200 bytes, and
its new path is searched as the first was.
"""

import socket

from aioquic import tls
from aioquic.buffer import Buffer
from aioquic.quic.packet import QuicFrameType, QuicPacketType, pull_quic_transport_parameters
from aioquic.quic.packet_builder import QuicDeliveryState, QuicPacketBuilder

from .udpsend import MAX_SEND

#: QUIC's smallest datagram (RFC 9000 14): where every connection starts, and falls back to.
BASE = 1200
#: Sizes probed in turn, then the listener's limit: an Ethernet path (1,500 bytes less the IPv6
#: and UDP headers), a jumbo-frame one (9,000 less the same), and 16 KiB, a step short of
#: a larger limit (curl 8.23 with ngtcp2 announces 65527 but fails its connection on 32 KiB).
LADDER = (1452, 8952, 16384)
#: Probes lost at one size before the search ends there (RFC 8899 MAX_PROBES).
MAX_PROBES = 3
#: Bytes a connection sends before it probes: below it the probes would cost more than the
#: larger datagrams save.
START_AFTER = 256 * 1024
#: Probe timeouts in a row after which a raised size counts as a black hole.
BLACK_HOLE_PTOS = 3

#: aioquic's internals used here (checked by tests/unit/test_quicmtu.py): the datagram size its
#: builder, congestion controller and pacer use, and what a packet needs to be built and tracked.
PRIVATE_AIOQUIC_NAMES = ("_max_datagram_size", "_loss", "_packet_number", "_cryptos",
                         "_spaces", "_peer_cid", "_spin_bit", "_version", "_handshake_confirmed",
                         "_network_paths")

# Linux's socket options for the don't-fragment bit; Python names only some of them
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
#: set DF and ignore the kernel's path MTU cache: a datagram too large for the interface fails
#: with EMSGSIZE (a lost probe), one too large for a router is dropped there
_PMTUDISC_PROBE = 3


def dont_fragment(sock):
    """Set the don't-fragment bit on the UDP socket ``sock`` (IPv4, and IPv6 for an IPv6
    socket); False where the system has no such option (then no size above BASE is probed)."""
    options = [(socket.IPPROTO_IP, _IP_MTU_DISCOVER)]
    if sock.family == socket.AF_INET6:
        options.append((socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER))
    try:
        for level, option in options:
            sock.setsockopt(level, option, _PMTUDISC_PROBE)
    except OSError:
        return False
    return True


def peer_max_udp_payload(quic):
    """The largest datagram the peer accepts (its max_udp_payload_size transport parameter,
    65527 when absent), once the handshake has brought the parameters; else None."""
    for ext_type, data in quic.tls.received_extensions or ():
        if ext_type == tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS:
            params = pull_quic_transport_parameters(Buffer(data=data))
            return params.max_udp_payload_size or 65527
    return None


class PathMTUSearch:
    """The datagram size of one QUIC connection (``quic``, server side): probes up to
    ``limit`` bytes and applies what the peer acknowledges."""

    def __init__(self, quic, limit):
        self.quic = quic
        self.limit = limit
        self.size = BASE
        self._restart()

    def _restart(self):
        self.done = self.limit <= BASE  # no more probing (the search ended, or never starts)
        self.candidates = None  # sizes left to probe, smallest first; set once probing starts
        self.sent = 0  # bytes the connection sent before probing started
        self.lost = 0  # probes lost at the smallest candidate
        self.probing = None  # the size of the probe in flight
        self.path = None  # the peer address the sizes were found for

    def datagrams(self, now, sent):
        """Probe datagrams, (data, addr) pairs, to send after ``sent`` (this transmit's)."""
        quic = self.quic
        if self.path is not None and quic._network_paths[0].addr != self.path:
            # the client moved: what was found, or is being probed, is for the old path
            self._apply(BASE)
            self._restart()
        elif self.size > BASE and quic._loss._pto_count >= BLACK_HOLE_PTOS:
            self._apply(BASE)
            self.done = True
        if self.done or self.probing is not None or not quic._handshake_confirmed:
            return []
        if self.candidates is None:
            self.sent += sum(len(data) for data, _ in sent)
            if self.sent < START_AFTER:
                return []
            top = min(self.limit, peer_max_udp_payload(quic) or BASE, MAX_SEND)
            self.candidates = sorted({s for s in LADDER + (top,) if BASE < s <= top})
            self.path = quic._network_paths[0].addr
        if not self.candidates:
            self.done = True
            return []
        return [self._probe(self.candidates[0], now)]

    def _probe(self, size, now):
        """One datagram of ``size`` bytes: a 1-RTT packet of PING and PADDING, registered
        with aioquic's loss recovery (not in flight) so that its ack or loss is reported."""
        quic = self.quic
        builder = QuicPacketBuilder(
            host_cid=quic.host_cid, is_client=False, max_datagram_size=size,
            packet_number=quic._packet_number, peer_cid=quic._peer_cid.cid, peer_token=b"",
            spin_bit=quic._spin_bit, version=quic._version)
        builder.start_packet(QuicPacketType.ONE_RTT, quic._cryptos[tls.Epoch.ONE_RTT])
        builder.start_frame(QuicFrameType.PING, handler=self._delivered, handler_args=(size,))
        padding = builder.start_frame(QuicFrameType.PADDING)
        padding.push_bytes(bytes(builder.remaining_buffer_space))
        datagrams, packets = builder.flush()
        quic._packet_number = builder.packet_number
        for packet in packets:
            packet.sent_time = now
            packet.in_flight = False
            quic._loss.on_packet_sent(packet=packet, space=quic._spaces[packet.epoch])
        self.probing = size
        return datagrams[0], self.path

    def _delivered(self, state, size):
        """aioquic's delivery handler of a probe: acknowledged or lost."""
        self.probing = None
        if self.done or not self.candidates or self.candidates[0] != size:
            return
        if state == QuicDeliveryState.ACKED:
            self.candidates.pop(0)
            self.lost = 0
            self._apply(size)
            return
        self.lost += 1
        if self.lost >= MAX_PROBES:
            self.done = True

    def _apply(self, size):
        """Use ``size`` for the connection's datagrams: aioquic's packet builder, congestion
        controller and pacer each keep their own copy."""
        quic = self.quic
        quic._max_datagram_size = size
        for part in (quic._loss._cc, quic._loss._pacer):
            if hasattr(part, "_max_datagram_size"):
                part._max_datagram_size = size
        self.size = size
