"""eagertcp: a write on a connection with nothing queued is sent at once, the rest goes
Twisted's way in order. A real socket pair (the server's end non-blocking, as Twisted's),
Twisted's MemoryReactor in place of the event loop: what the connection asks the reactor to
watch is recorded, and the test calls doWrite where the loop would."""

import socket
import struct

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, MemoryReactorClock

from txzserver.server.eagertcp import EagerPort, EagerServer, EagerTCPServerEndpoint


class Recorder(Protocol):
    lost = None

    def connectionLost(self, reason):
        self.lost = reason


@pytest.fixture
def pair():
    server_end, client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server_end.setblocking(False)
    client_end.settimeout(5)
    reactor = MemoryReactor()
    protocol = Recorder()
    transport = EagerServer(server_end, protocol, ("127.0.0.1", 40000), None, 1, reactor)
    protocol.makeConnection(transport)
    yield transport, client_end, reactor, protocol
    client_end.close()
    server_end.close()


def read_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def test_a_small_write_is_sent_without_watching_the_socket(pair):
    transport, client, reactor, _ = pair
    transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
    assert read_exactly(client, 40) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"
    assert transport not in reactor.getWriters()
    transport.writeSequence([b"a", b"b", b"c"])
    assert read_exactly(client, 3) == b"abc"
    assert transport not in reactor.getWriters()


def test_what_the_kernel_refuses_is_queued_and_later_writes_keep_their_order(pair):
    transport, client, reactor, _ = pair
    big = bytes(range(256)) * 16384  # 4 MiB: more than a socket pair's buffers hold
    transport.write(big)
    assert transport in reactor.getWriters()  # the remainder waits for writability
    transport.write(b"after")  # queued behind it, not sent ahead of it
    received = b""
    while len(received) < len(big) + 5:
        received += client.recv(1 << 20)
        transport.doWrite()
    assert received == big + b"after"
    assert transport not in reactor.getWriters()


def test_a_write_to_a_reset_connection_is_reported_as_twisted_reports_it(pair):
    transport, client, reactor, protocol = pair
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    transport.write(b"nobody reads this")  # does not raise into the writer
    assert transport in reactor.getWriters()
    assert isinstance(transport.doWrite(), ConnectionLost)
    assert protocol.lost is None  # the reactor, not the write, disconnects


def test_a_write_after_lose_connection_is_flushed_before_the_close(pair):
    transport, client, reactor, _ = pair
    transport.loseConnection()
    transport.write(b"last")
    assert transport in reactor.getWriters()
    transport.doWrite()
    assert read_exactly(client, 4) == b"last"


@pytest.mark.parametrize("interface, address_type", [("127.0.0.1", IPv4Address), ("::1", IPv6Address)])
def test_the_endpoint_listens_on_ipv4_and_ipv6_interfaces_with_eager_connections(interface, address_type):
    reactor = MemoryReactorClock()
    found = []
    endpoint = EagerTCPServerEndpoint(reactor, 0, 5, interface)
    endpoint.listen(Factory.forProtocol(Recorder)).addBoth(found.append)
    port = found[0]
    try:
        assert isinstance(port, EagerPort) and port.transport is EagerServer
        assert isinstance(port.getHost(), address_type) and port.getHost().host == interface
        assert port in reactor.getReaders()
    finally:
        port.stopListening()
