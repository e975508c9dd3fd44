"""txzserver.transfer: the pause observer both protocols use, and close_body."""

import pytest
from twisted.internet.interfaces import IPushProducer
from zope.interface.verify import verifyObject

from twisted.internet.task import Clock

from txzserver.transfer import ClientGone, PauseObserver, StallTimer, close_body


def test_wait_fires_when_the_transport_resumes():
    observer = PauseObserver()
    assert observer.wait().called  # not paused: go on at once
    observer.pauseProducing()
    d = observer.wait()
    assert not d.called
    assert observer.wait() is d  # one waiter for all writes
    observer.resumeProducing()
    assert d.called


def test_wait_fails_with_client_gone_when_stopped():
    observer = PauseObserver()
    observer.pauseProducing()
    errors = []
    observer.wait().addErrback(errors.append)
    observer.stopProducing()
    assert errors and errors[0].check(ClientGone)
    later = []
    observer.wait().addErrback(later.append)
    assert later and later[0].check(ClientGone)


def test_backlog_counts_writes_while_paused_until_resumed():
    observer = PauseObserver()
    assert observer.wrote_while_paused() == 0  # not paused: nothing counted
    observer.pauseProducing()
    assert [observer.wrote_while_paused() for _ in range(3)] == [1, 2, 3]
    observer.resumeProducing()
    assert observer.backlog == 0


def test_is_a_push_producer():
    assert verifyObject(IPushProducer, PauseObserver())


class Body:
    def __init__(self, error=None):
        self.closed = 0
        self.error = error

    def close(self):
        self.closed += 1
        if self.error:
            raise self.error


def test_close_body():
    body = Body()
    close_body(body)
    assert body.closed == 1
    close_body(object())  # nothing to close: nothing happens


def test_close_body_errors_are_logged_or_raised():
    close_body(Body(ValueError("x")))  # quietly: logged
    with pytest.raises(ValueError):
        close_body(Body(ValueError("x")), quietly=False)


def test_paused_for_and_backlog_bytes_on_a_clock():
    now = [100.0]
    observer = PauseObserver(clock=lambda: now[0])
    assert observer.paused_for() == 0.0
    observer.pauseProducing()
    now[0] = 103.5
    observer.pauseProducing()  # a second pause does not restart the clock
    observer.wrote_while_paused(10)
    observer.wrote_while_paused(5)
    assert (observer.paused_for(), observer.backlog, observer.backlog_bytes) == (3.5, 2, 15)
    observer.resumeProducing()
    assert (observer.paused_for(), observer.backlog, observer.backlog_bytes) == (0.0, 0, 0)


def test_stall_timer_fires_only_after_seconds_without_progress():
    clock, fired = Clock(), []
    timer = StallTimer(clock, 5, lambda: fired.append(clock.seconds()))
    clock.advance(4)
    timer.progress()
    clock.advance(4)
    assert fired == []
    clock.advance(1)
    assert fired == [9]
    timer.progress()  # after firing: nothing to reset, nothing fires again
    timer.stop()
    clock.advance(10)
    assert fired == [9] and clock.getDelayedCalls() == []


def test_stopped_stall_timer_never_fires():
    clock, fired = Clock(), []
    timer = StallTimer(clock, 5, lambda: fired.append(True))
    timer.stop()
    timer.stop()
    clock.advance(10)
    assert fired == [] and clock.getDelayedCalls() == []
