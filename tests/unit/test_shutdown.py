"""txzserver.server.shutdown: requests in flight and the bounded drain on shutdown."""

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from txzserver.server.shutdown import InFlight, drain


class FakePort:
    def __init__(self, result=None):
        self.stopped = False
        self.result = result

    def stopListening(self):
        self.stopped = True
        return self.result


def fired(d):
    results = []
    d.addBoth(results.append)
    return results


def test_in_flight_counts_and_wakes_waiters():
    tracker = InFlight()
    assert fired(tracker.wait_idle()) == [None]
    tracker.started()
    tracker.started()
    first, second = fired(tracker.wait_idle()), fired(tracker.wait_idle())
    tracker.ended()
    assert first == [] and second == []
    tracker.ended("result passed by notifyFinish")
    assert first == [None] and second == [None]
    assert tracker.count == 0
    # A new wait after idle fires at once; old waiters are not fired twice.
    tracker.started()
    tracker.ended()
    assert first == [None]


def test_drain_stops_listening_and_waits_for_requests():
    reactor = MemoryReactorClock()
    ports = [FakePort(), FakePort(defer.succeed(None))]
    tracker = InFlight()
    tracker.started()
    result = fired(drain(reactor, ports, tracker, timeout=30))
    assert all(port.stopped for port in ports)
    assert result == []
    reactor.advance(10)
    assert result == []
    tracker.ended()
    assert result == [None]
    assert not reactor.getDelayedCalls()


def test_drain_times_out_when_a_port_never_stops():
    reactor = MemoryReactorClock()
    result = fired(drain(reactor, [FakePort(defer.Deferred())], InFlight(), timeout=5))
    reactor.advance(6)
    assert result == [None]


def test_drain_waits_for_ports_to_stop():
    reactor = MemoryReactorClock()
    stopping = defer.Deferred()
    tracker = InFlight()
    result = fired(drain(reactor, [FakePort(stopping)], tracker, timeout=30))
    assert result == []
    stopping.callback(None)
    assert result == [None]


def test_drain_without_requests_finishes_at_once():
    reactor = MemoryReactorClock()
    result = fired(drain(reactor, [FakePort()], InFlight(), timeout=30))
    assert result == [None]
    assert not reactor.getDelayedCalls()


def test_drain_times_out():
    reactor = MemoryReactorClock()
    tracker = InFlight()
    tracker.started()
    result = fired(drain(reactor, [FakePort()], tracker, timeout=5))
    reactor.advance(4.9)
    assert result == []
    reactor.advance(0.2)
    assert result == [None]  # the reactor's shutdown goes on
    assert not reactor.getDelayedCalls()
    # The request that finishes late does not break anything.
    tracker.ended()
    assert tracker.count == 0


def test_drain_still_waits_when_a_port_fails_to_stop():
    reactor = MemoryReactorClock()
    tracker = InFlight()
    tracker.started()
    failing = FakePort(defer.fail(OSError("cannot close socket")))
    good = FakePort()
    result = fired(drain(reactor, [failing, good], tracker, timeout=30))
    assert good.stopped
    assert result == []
    tracker.ended()
    assert result == [None]


def test_drain_with_a_delay_keeps_listening_while_readiness_fails():
    reactor = MemoryReactorClock()
    ports = [FakePort()]
    tracker = InFlight()
    tracker.started()  # a request in flight when SIGTERM comes
    result = fired(drain(reactor, ports, tracker, timeout=5, delay=3))
    assert tracker.draining  # /healthz/ready fails from now on
    reactor.advance(2.9)
    assert not ports[0].stopped and result == []  # still accepting
    tracker.started()  # a newcomer served during the delay
    reactor.advance(0.2)
    assert ports[0].stopped and result == []
    reactor.advance(4.8)  # shutdown-timeout counts from the closing of the listeners
    assert result == []
    tracker.ended()
    tracker.ended()
    assert result == [None]
    assert not reactor.getDelayedCalls()


def test_drain_timeout_after_a_delay():
    reactor = MemoryReactorClock()
    tracker = InFlight()
    tracker.started()
    result = fired(drain(reactor, [FakePort()], tracker, timeout=5, delay=3))
    reactor.advance(7.9)
    assert result == []
    reactor.advance(0.2)
    assert result == [None]
    assert not reactor.getDelayedCalls()
