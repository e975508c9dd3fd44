"""The QUIC socket's reading: at most READ_BATCH datagrams per readable event (a real UDP
socket, Twisted's MemoryReactorClock in place of the loop), and a connection's datagrams of one
batch answered by one transmit after it (an aioquic client in memory: h3pair)."""

import socket

from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock

from txzserver.server.h3listen import READ_BATCH, QuicPort

from .h3pair import CLIENT, Pair


class Batches(DatagramProtocol):
    def __init__(self):
        self.batches = []

    def batch_started(self):
        self.batches.append([])

    def datagramReceived(self, data, addr):
        self.batches[-1].append(data)

    def batch_ended(self):
        self.batches[-1].append("end")


def test_a_readable_event_takes_at_most_a_batch_and_the_rest_waits_for_the_next():
    protocol = Batches()
    port = QuicPort(0, protocol, interface="127.0.0.1", reactor=MemoryReactorClock())
    port.startListening()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for i in range(READ_BATCH + 10):
                client.sendto(b"%d" % i, ("127.0.0.1", port.getHost().port))
            port.doRead()
            port.doRead()
            port.doRead()  # nothing left: an empty batch, still ended
    finally:
        port.stopListening()
    first, second, third = protocol.batches
    assert first == [b"%d" % i for i in range(READ_BATCH)] + ["end"]
    assert second == [b"%d" % i for i in range(READ_BATCH, READ_BATCH + 10)] + ["end"]
    assert third == ["end"]


def test_a_datagram_that_raises_does_not_end_the_batch(monkeypatch):
    protocol = Batches()
    seen = []

    def datagram(data, addr):
        seen.append(data)
        if data == b"bad":
            raise ValueError("a bug in one connection's handling")

    protocol.datagramReceived = datagram
    port = QuicPort(0, protocol, interface="127.0.0.1", reactor=MemoryReactorClock())
    port.startListening()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for data in (b"good", b"bad", b"after"):
                client.sendto(data, ("127.0.0.1", port.getHost().port))
            port.doRead()
    finally:
        port.stopListening()
    assert seen == [b"good", b"bad", b"after"] and protocol.batches == [["end"]]


def test_datagrams_of_one_batch_are_answered_once_after_it(tmp_path):
    pair = Pair(tmp_path)
    ids = [pair.get(b"/one"), pair.get(b"/two"), pair.get(b"/three")]
    datagrams = [data for data, _ in pair.client.datagrams_to_send(now=pair.reactor.seconds())]
    pair.endpoint.batch_started()
    for data in datagrams:
        pair.endpoint.datagramReceived(data, CLIENT)
    assert pair.endpoint.transport.sent == []  # nothing sent within the batch
    pair.reactor.advance(0)  # the requests answered (this test's pool runs at once)
    pair.endpoint.batch_ended()
    assert pair.endpoint.transport.sent  # the responses (and acknowledgements) went out
    pair.pump()
    assert [pair.response(stream_id)[0][b":status"] for stream_id in ids] == [b"200"] * 3

