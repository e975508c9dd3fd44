"""Path MTU discovery for HTTP/3: an aioquic client and the server endpoint in memory, over a
link that may lose datagrams above a size (tests/unit/h3pair.py)."""

import socket

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from txzserver.server import quicmtu
from txzserver.server.quicmtu import BASE, LADDER, START_AFTER, dont_fragment

from .h3pair import Pair
from .test_h3 import Download, body_of, download

MiB = 1024 * 1024


def fetch(tmp_path, size, **options):
    """A Download of ``size`` bytes through a Pair; (pair, body, the connection's search)."""
    pair = Pair(tmp_path, resource=Download(size), client_window=8 * MiB, **options)
    body = download(pair, rounds=400)[0]
    channel = next(iter(pair.endpoint.channels.values()))
    return pair, body, channel.path_mtu


def test_a_large_download_grows_its_datagrams_to_the_listener_limit(tmp_path):
    pair, body, search = fetch(tmp_path, 4 * MiB, max_datagram_size=16384)
    assert body == body_of(4 * MiB)
    assert search.size == 16384 and search.candidates == []
    assert max(pair.sizes) == 16384
    # 1,200 bytes until the connection had sent START_AFTER, then the probes' sizes in turn
    big = [i for i, size in enumerate(pair.sizes) if size > BASE]
    assert sum(pair.sizes[:big[0]]) >= START_AFTER
    firsts = [pair.sizes.index(size) for size in LADDER]
    assert firsts == sorted(firsts)
    # most of the body went in the largest datagrams
    assert sum(size for size in pair.sizes if size == 16384) > 3 * MiB


def test_the_client_limit_is_never_passed(tmp_path):
    """A client announcing max_udp_payload_size 1500 (as browsers announce one) gets no
    datagram above it, though the listener would allow 16 KiB."""
    pair, body, search = fetch(tmp_path, 2 * MiB, max_datagram_size=16384,
                               client_max_udp_payload=1500)
    assert body == body_of(2 * MiB)
    assert search.size == 1500
    assert max(pair.sizes) == 1500


def test_a_path_that_loses_large_datagrams_keeps_what_it_carries(tmp_path):
    """An Ethernet path (1,500-byte MTU): 1,452 is acknowledged, the 8,952-byte probe is
    lost MAX_PROBES times and the search ends; the download is whole, and only the probes
    were ever larger than the path."""
    pair, body, search = fetch(tmp_path, 2 * MiB, max_datagram_size=16384, link_mtu=1500)
    assert body == body_of(2 * MiB)
    for _ in range(20):  # a probe still in flight at the end is found lost by its timeout
        pair.reactor.advance(0.1)
        pair.pump(rounds=1)
    assert search.size == 1452 and search.done
    assert [size for size in pair.sizes if size > 1500] == [LADDER[1]] * quicmtu.MAX_PROBES


def test_a_path_that_shrinks_falls_back_to_the_smallest_datagram(tmp_path):
    """Raised to 16 KiB, then the path carries no more than 1,300 bytes (a route changed): the
    connection's probe timeouts pile up, it falls back to 1,200 bytes, probes no more, and
    the download still ends whole."""
    size = 6 * MiB
    pair = Pair(tmp_path, resource=Download(size), client_window=8 * MiB,
                max_datagram_size=16384)
    stream_id = pair.get(b"/blob")
    pair.pump(rounds=1)
    search = next(iter(pair.endpoint.channels.values())).path_mtu
    for _ in range(2000):
        for _ in range(40):
            pair.reactor.advance(0.00025)
        pair.pump(rounds=1)
        if search.size == 16384 and pair.link_mtu is None:
            pair.link_mtu = 1300
            shrunk_at = len(pair.sizes)
        if pair.ended(stream_id):
            break
    assert pair.link_mtu == 1300
    assert pair.response(stream_id)[1] == body_of(size)
    assert search.size == BASE and search.done
    assert pair.sizes[-1] <= BASE and max(pair.sizes[shrunk_at:][-50:]) <= BASE


def test_a_client_that_moves_starts_again_at_1200_on_its_new_path(tmp_path):
    """Raised to 16 KiB, the client's datagrams come from a new address (a NAT rebinding, a
    new network): the connection falls back to 1,200 bytes at once, sends START_AFTER bytes
    there, probes again, to the new address, and the download ends whole."""
    size = 6 * MiB
    moved_to = ("127.0.0.1", 40001)
    pair = Pair(tmp_path, resource=Download(size), client_window=8 * MiB,
                max_datagram_size=16384)
    stream_id = pair.get(b"/blob")
    pair.pump(rounds=1)
    search = next(iter(pair.endpoint.channels.values())).path_mtu
    moved_at = None
    for _ in range(2000):
        for _ in range(40):
            pair.reactor.advance(0.00025)
        pair.pump(rounds=1)
        if moved_at is None and search.size == 16384:
            pair.client_addr = moved_to
            moved_at = len(pair.sizes)
        if pair.ended(stream_id):
            break
    assert moved_at is not None and pair.response(stream_id)[1] == body_of(size)
    after = list(zip(pair.sizes[moved_at:], pair.addresses[moved_at:]))
    to_new = [size for size, addr in after if addr == moved_to]
    # back to 1,200 on the new path until it had START_AFTER bytes, then raised again there
    first_big = next(i for i, size in enumerate(to_new) if size > BASE)
    assert sum(to_new[:first_big]) >= START_AFTER
    assert max(to_new) == 16384 and search.size == 16384 and search.path == moved_to


def test_at_1200_nothing_is_probed(tmp_path):
    pair, body, search = fetch(tmp_path, 2 * MiB)  # the Pair's listener at BASE
    assert body == body_of(2 * MiB)
    assert max(pair.sizes) <= BASE and search.done


def test_a_small_response_sends_no_probe(tmp_path):
    """A page's connection: less than START_AFTER sent, no probe and no larger datagram."""
    pair, body, search = fetch(tmp_path, 100 * 1024, max_datagram_size=16384)
    assert body == body_of(100 * 1024)
    assert max(pair.sizes) <= BASE and search.candidates is None


def test_aioquic_still_has_what_the_search_uses(tmp_path):
    config = QuicConfiguration(is_client=True)
    quic = QuicConnection(configuration=config)
    for name in quicmtu.PRIVATE_AIOQUIC_NAMES:
        assert hasattr(quic, name), name
    assert hasattr(quic._loss, "_pto_count") and hasattr(quic._loss, "_cc")
    assert hasattr(quic._loss._pacer, "_max_datagram_size")
    assert hasattr(quic._loss._cc, "_max_datagram_size")


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_the_socket_sets_dont_fragment(family, host):
    """A real UDP socket: DF set (Linux's PMTUDISC_PROBE), so a datagram above the
    interface's MTU fails with EMSGSIZE instead of leaving in fragments."""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        assert dont_fragment(sock)
        assert sock.getsockopt(socket.IPPROTO_IP, quicmtu._IP_MTU_DISCOVER) == 3
        if family == socket.AF_INET6:
            assert sock.getsockopt(socket.IPPROTO_IPV6, quicmtu._IPV6_MTU_DISCOVER) == 3
