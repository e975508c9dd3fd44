"""txzserver.websocket.sending.write_now: at once when nothing is queued, else Twisted's write."""

import pytest
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import MemoryReactor, StringTransport

from txzserver.websocket import sending
from txzserver.websocket.sending import write_now


class TcpLike(FileDescriptor):
    """A FileDescriptor whose socket's send is scripted: what a TCP transport looks like."""

    TLS = False
    connected = True

    def __init__(self, accepts):
        super().__init__(reactor=MemoryReactor())
        self.accepts = list(accepts)
        self.sent = []
        self.socket = self

    def send(self, data):  # the socket's
        accept = self.accepts.pop(0)
        if isinstance(accept, Exception):
            raise accept
        self.sent.append(bytes(data[:accept]))
        return accept

    def startWriting(self):
        self.writing = True


@pytest.mark.parametrize("name", sending.PRIVATE_TWISTED_NAMES)
def test_private_name_exists(name):
    assert hasattr(FileDescriptor(reactor=MemoryReactor()), name), (
        f"twisted FileDescriptor has no {name!r} any more: txzserver.websocket.sending uses it")


def test_sent_at_once_when_nothing_is_queued():
    transport = TcpLike([5])
    write_now(transport, b"hello")
    assert transport.sent == [b"hello"]
    assert transport._tempDataBuffer == [] and not getattr(transport, "writing", False)


def test_the_rest_of_a_partial_send_is_queued():
    transport = TcpLike([2])
    write_now(transport, b"hello")
    assert transport.sent == [b"he"] and transport._tempDataBuffer == [b"llo"]


def test_queued_data_keeps_its_place():
    transport = TcpLike([5])
    transport.write(b"first")
    write_now(transport, b"second")
    assert transport.sent == [] and transport._tempDataBuffer == [b"first", b"second"]


@pytest.mark.parametrize("error", [BlockingIOError(), ConnectionResetError()])
def test_a_full_socket_or_a_lost_connection_is_left_to_twisted(error):
    transport = TcpLike([error])
    write_now(transport, b"hello")
    assert transport._tempDataBuffer == [b"hello"]


def test_tls_and_other_transports_use_write():
    tls = TcpLike([5])
    tls.TLS = True
    write_now(tls, b"hello")
    assert tls.sent == [] and tls._tempDataBuffer == [b"hello"]
    other = StringTransport()
    write_now(other, b"hello")
    assert other.value() == b"hello"


# Batch: the sends of one delivery, by two threads

def test_a_batch_sends_everything_at_flush_in_two_threads():
    from txzserver.websocket.sending import Batch
    batch = Batch(split_at=4)
    transports = [TcpLike([5]) for _ in range(10)]
    batch.begin()
    for transport in transports:
        batch.write(transport, b"event")
    assert all(t.sent == [] for t in transports)  # nothing before the flush
    batch.flush()
    assert all(t.sent == [b"event"] for t in transports)
    assert batch._helper is not None  # above split_at: the helper thread took half
    batch.close()


def test_a_batch_keeps_the_order_of_two_messages_to_one_connection():
    from txzserver.websocket.sending import Batch
    batch = Batch()
    transport = TcpLike([3])
    batch.begin()
    batch.write(transport, b"gap")
    batch.write(transport, b"event")
    batch.flush()
    assert transport.sent == [b"gap"] and transport._tempDataBuffer == [b"event"]


def test_outside_a_delivery_a_batch_writes_at_once():
    from txzserver.websocket.sending import Batch
    transport = TcpLike([5])
    Batch().write(transport, b"hello")
    assert transport.sent == [b"hello"]
