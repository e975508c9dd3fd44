"""txzserver.server.reactor.UvloopReactor: sockets uvloop stopped watching are not lost, and
timed calls do not spin on uvloop's millisecond timers.

No sockets: the loop is a stand-in doing what uvloop does with a socket the kernel flagged
with an error (EPOLLERR): after running the callbacks once it keeps a closed watcher for the
descriptor, and adding a reader or writer there raises RuntimeError until the descriptor's
reader and writer are removed. The connection is a TCP connection whose socket says what
SO_ERROR holds.
"""

import errno

import pytest
import uvloop
from twisted.internet import error, tcp

from txzserver.server import reactor as reactor_module
from txzserver.server.reactor import UVLOOP_TICK, UvloopReactor, uvloop_delay

FD = 42


class UvloopStandIn:
    """add/remove reader and writer as uvloop's, with ``closed`` the descriptors whose
    watcher uvloop closed (and still keeps)."""

    def __init__(self):
        self.readers, self.writers, self.closed = {}, {}, set()

    def _watch(self, table, fd, callback, args):
        if fd in self.closed:
            raise RuntimeError("unable to perform operation on <UVPoll closed=True>;"
                               " the handler is closed")
        table[fd] = (callback, args)

    def add_reader(self, fd, callback, *args):
        self._watch(self.readers, fd, callback, args)

    def add_writer(self, fd, callback, *args):
        self._watch(self.writers, fd, callback, args)

    def remove_reader(self, fd):
        self.closed.discard(fd)  # uvloop drops the closed watcher of the descriptor
        return self.readers.pop(fd, None) is not None

    def remove_writer(self, fd):
        self.closed.discard(fd)
        return self.writers.pop(fd, None) is not None

    def close_watcher(self, fd):
        """What uvloop does on EPOLLERR, after calling the callbacks once."""
        self.readers.pop(fd, None)
        self.writers.pop(fd, None)
        self.closed.add(fd)


class SocketStandIn:
    def __init__(self, pending):
        self.pending = pending

    def getsockopt(self, level, option):
        pending, self.pending = self.pending, 0  # the kernel clears it once told
        return pending


class ReadConnection(tcp.Connection):
    """A TCP connection whose reads return bytes (the request that came before the reset)."""

    def __init__(self, pending=0):  # no socket, no protocol: only what the reactor asks
        self.socket = SocketStandIn(pending)
        self.received = 0
        self.lost = []
        self.disconnected = False

    def fileno(self):
        return FD

    def getPeer(self):
        raise OSError("no peer")

    def doRead(self):
        self.received += 1
        return None

    def doWrite(self):
        return None

    def connectionLost(self, reason):
        self.lost.append(reason)


@pytest.fixture
def loop():
    return UvloopStandIn()


@pytest.fixture
def reactor(loop):
    return UvloopReactor(loop)


def test_a_read_that_leaves_a_reset_pending_disconnects(reactor):
    """The read returned the request; the reset behind it is still the socket's pending
    error: the connection is lost now, as Twisted's next read would have found."""
    connection = ReadConnection(pending=errno.ECONNRESET)
    reactor.addReader(connection)
    reactor._readOrWrite(connection, True)
    assert connection.received == 1
    assert len(connection.lost) == 1 and connection.lost[0].check(error.ConnectionLost)
    assert connection not in reactor.getReaders()


def test_a_read_without_error_keeps_the_connection(reactor, loop):
    connection = ReadConnection()
    reactor.addReader(connection)
    reactor._readOrWrite(connection, True)
    assert connection.lost == [] and connection in reactor.getReaders()
    assert FD in loop.readers


def test_a_closed_watcher_is_renewed_when_the_connection_writes(reactor, loop):
    """uvloop closed the watcher Twisted reads with; the response's write must not raise,
    and the socket is watched again for reading and writing (the kernel tells the new
    watcher of the reset, and Twisted disconnects as usual)."""
    connection = ReadConnection()
    reactor.addReader(connection)
    loop.close_watcher(FD)
    reactor.addWriter(connection)
    assert FD in loop.readers and FD in loop.writers
    assert connection in reactor.getReaders() and connection in reactor.getWriters()


def test_a_closed_watcher_is_renewed_when_the_connection_reads_again(reactor, loop):
    connection = ReadConnection()
    reactor.addWriter(connection)
    loop.close_watcher(FD)
    reactor.addReader(connection)
    assert FD in loop.readers and FD in loop.writers


def test_private_reactor_names_exist(reactor):
    for name in reactor_module.PRIVATE_TWISTED_NAMES:
        assert hasattr(reactor, name), (
            f"Twisted's asyncio reactor has no {name!r} any more: txzserver.server.reactor uses it")


@pytest.mark.parametrize("timeout, behind, delay", [
    (0.0, 0.0005, 0.0),          # due now: the loop's next turn, no millisecond added
    (-0.01, 0.0, 0.0),           # overdue: the same
    (0.0003, 0.0, 0.001),        # uvloop would round it to nothing and fire at once
    (0.0003, 0.0009, 0.002),     # its clock is 0.9 ms behind: 1.2 ms from its "now"
    (0.005, 0.0, 0.005),
    (0.005, 0.0001, 0.006),
    (0.0049999999, 0.0, 0.005),  # a float's last digits do not add a millisecond
    (0.0014, 0.5, 0.003),        # a clock "behind" by more than a tick is a tick behind
])
def test_a_delay_for_uvloop_is_whole_milliseconds_never_short(timeout, behind, delay):
    assert uvloop_delay(timeout, behind) == pytest.approx(delay)
    assert uvloop_delay(timeout, behind) == 0 or uvloop_delay(timeout, behind) >= timeout


@pytest.fixture
def uv_reactor():
    loop = uvloop.new_event_loop()
    yield UvloopReactor(loop), loop
    loop.close()


def test_sub_millisecond_calls_fire_once_each_and_never_early(uv_reactor):
    """A chain of calls each due 0.3 ms after the last, on a real uvloop loop: the loop's
    timer fires about once per call (it fired about a hundred times per call, at once and
    again until the call was due, when a delay under half a millisecond went to uvloop as
    it was), and no call runs before its time."""
    reactor, loop = uv_reactor
    turns, early, calls = [0], [], 50
    on_timer = reactor._onTimer

    def counted():
        turns[0] += 1
        on_timer()

    reactor._onTimer = counted
    done = loop.create_future()

    def step(due, left):
        if reactor.seconds() < due:
            early.append(due - reactor.seconds())
        if left == 0:
            done.set_result(None)
            return
        reactor.callLater(0.0003, step, reactor.seconds() + 0.0003, left - 1)

    reactor.callLater(0.0003, step, reactor.seconds() + 0.0003, calls)
    loop.run_until_complete(done)
    assert early == []
    assert turns[0] <= 2 * (calls + 1), f"{turns[0]} timer turns for {calls + 1} calls"


def test_a_call_due_now_runs_on_the_loops_next_turn(uv_reactor):
    """callLater(0) (and callFromThread, which uses it) gets no millisecond added."""
    reactor, loop = uv_reactor
    ran = []
    reactor.callLater(0, ran.append, True)
    assert reactor._scheduledAt is not None and reactor._scheduledAt <= loop.time() + UVLOOP_TICK / 2
    loop.run_until_complete(_one_turn(loop))
    assert ran == [True]


async def _one_turn(loop):
    future = loop.create_future()
    loop.call_soon(future.set_result, None)
    await future
