"""txzserver.bus.zmqreader: the reader base of the event bus (ZmqBus) and the task queue
(ZmqBackend), on real ZeroMQ sockets (inproc PUSH/PULL) and a MemoryReactorClock; and
txzserver.bus.lag's RoundTrips, the lag both bus publishers report."""

import secrets

import pytest
import zmq
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from txzserver.bus.lag import RoundTrips
from txzserver.bus.publishers import ZmqBus
from txzserver.bus.zmqreader import ZmqReader, context, drain
from txzserver.tasks.backends import ZmqBackend

from .zmqbroker import poll_readable, wait_for


class Recording(ZmqReader):
    """Reads a PULL socket fed by the test's PUSH; ``room`` bounds each wake-up."""

    def __init__(self, reactor, room=None):
        endpoint = f"inproc://reader-{secrets.token_hex(6)}"
        self.feed = context().socket(zmq.PUSH)
        self.feed.setsockopt(zmq.LINGER, 0)
        self.feed.bind(endpoint)
        pull = context().socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.connect(endpoint)
        super().__init__(reactor, reading=pull, sockets=(pull,))
        self.room = room
        self.received = []
        self.closed_before_sockets = None

    def more(self):
        return super().more() and (self.room is None or len(self.received) < self.room)

    def receive(self, data):
        self.received.append(data)

    def closing(self):
        self.closed_before_sockets = not self.reading.closed


@pytest.fixture
def reader():
    made = Recording(MemoryReactorClock())
    yield made
    made.close()
    made.feed.close()


def send(reader, count):
    for n in range(count):
        reader.feed.send(b"%d" % n)


def read_until(reader, count):
    def pump():
        poll_readable([reader.reading], 20)
        reader.doRead()
    wait_for(lambda: len(reader.received) >= count, pump, what=f"{count} messages")


def test_the_reader_is_a_read_descriptor_with_a_prefix(reader):
    assert verifyObject(IReadDescriptor, reader)
    assert isinstance(reader.fileno(), int)
    assert reader.logPrefix() == "txzserver-zmq"


def test_both_zeromq_clients_share_the_base():
    assert issubclass(ZmqBus, ZmqReader) and issubclass(ZmqBackend, ZmqReader)
    assert (ZmqBus.log_prefix, ZmqBackend.log_prefix) == ("txzserver-bus", "txzserver-tasks")
    for cls in (ZmqBus, ZmqBackend):  # the shared parts are not written again
        assert not {"doRead", "fileno", "connectionLost", "logPrefix"} & set(vars(cls))


def test_start_reading_watches_the_socket_and_takes_what_came_before(reader):
    send(reader, 3)
    wait_for(lambda: reader.reading.poll(0), what="the first message queued")
    reader.start_reading()
    assert reader in reader.reactor.getReaders()
    read_until(reader, 3)
    assert reader.received == [b"0", b"1", b"2"]


def test_one_wake_up_drains_everything_waiting(reader):
    send(reader, 50)  # inproc: in the PULL socket's pipe once send returns
    reader.doRead()
    assert reader.received == [b"%d" % n for n in range(50)]


def test_more_stops_a_wake_up_and_the_rest_waits(reader):
    reader.room = 2
    send(reader, 5)
    read_until(reader, 2)
    reader.doRead()
    assert reader.received == [b"0", b"1"]
    reader.room = None
    read_until(reader, 5)
    assert reader.received == [b"0", b"1", b"2", b"3", b"4"]


def test_drain_of_an_empty_socket_yields_nothing(reader):
    assert list(drain(reader.reading)) == []


def test_close_once_stops_first_then_closes_the_sockets(reader):
    reader.start_reading()
    reader.close()
    assert reader.closed_before_sockets is True
    assert reader not in reader.reactor.getReaders() and reader.reading.closed
    reader.closed_before_sockets = None
    reader.close()  # again: nothing happens
    assert reader.closed_before_sockets is None
    assert not reader.more()


def test_connection_lost_closes(reader):
    reader.connectionLost(None)
    assert reader.reading.closed


def test_refused_messages_are_counted_and_logged_once_a_minute(reader, logged):
    reader.refuse("a thing from the test", ValueError("bad"))
    reader.refuse("a thing from the test", ValueError("worse"))
    assert reader.invalid == 2
    texts = [e.get("text") for e in logged if e.get("text")]
    assert texts == ["dropped a thing from the test that is not of its schema (1 so far): bad"]


# RoundTrips

class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_round_trips_time_an_own_message_back():
    clock = Clock()
    trips = RoundTrips(clock)
    assert trips.latest is None
    trips.sent(1)
    trips.sent(2)
    clock.now += 0.25
    trips.came_back(2)
    assert trips.latest == 0.25
    trips.came_back(2)  # heard twice (a redelivery): timed once
    trips.came_back(99)  # never sent by this run
    assert trips.latest == 0.25 and len(trips) == 1


def test_round_trips_keep_the_latest_samples_only():
    trips = RoundTrips(Clock())
    for seq in range(1, RoundTrips.SAMPLES + 11):
        trips.sent(seq)
    assert len(trips) == RoundTrips.SAMPLES
    trips.came_back(1)
    assert trips.latest is None  # forgotten: too old to time
