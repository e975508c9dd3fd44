"""txzserver.server.handback: results of worker threads reach the reactor, one wake-up a batch."""

import asyncio
import threading

from twisted.internet import asyncioreactor
from twisted.internet.testing import MemoryReactor

from txzserver.server import handback
from txzserver.server.handback import Handback, wake_up_function


class CountingReactor(MemoryReactor):
    """callFromThread keeps the calls until the test runs them (a reactor not yet awake)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def callFromThread(self, f, *args, **kwargs):
        self.calls.append((f, args, kwargs))

    def wake(self):
        calls, self.calls = self.calls, []
        for f, args, kwargs in calls:
            f(*args, **kwargs)


def test_results_queued_before_the_reactor_wakes_need_one_wake_up():
    reactor = CountingReactor()
    back = Handback(reactor)
    seen = []
    for n in range(5):
        back.put(seen.append, n)
    assert len(reactor.calls) == 1 and seen == []
    reactor.wake()
    assert seen == [0, 1, 2, 3, 4]
    back.put(seen.append, 5)  # the batch is done: the next result wakes the reactor again
    assert len(reactor.calls) == 1
    reactor.wake()
    assert seen == [0, 1, 2, 3, 4, 5]


def test_a_failing_call_is_logged_and_the_others_still_run():
    from twisted.logger import globalLogPublisher
    reactor = CountingReactor()
    back = Handback(reactor)
    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        seen = []
        back.put(lambda: 1 / 0)
        back.put(seen.append, "after")
        reactor.wake()
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert seen == ["after"]
    assert any(e.get("log_failure") is not None and e["log_failure"].check(ZeroDivisionError)
               for e in logged)


def test_results_from_many_threads_all_arrive_in_the_asyncio_loop():
    """A real asyncio loop under Twisted's asyncio reactor: the loop's own thread-safe call
    is used (no DelayedCall), and 4 threads x 200 results all arrive, each thread's in order."""
    loop = asyncio.new_event_loop()
    reactor = asyncioreactor.AsyncioSelectorReactor(loop)
    try:
        wake = wake_up_function(reactor)
        assert wake == loop.call_soon_threadsafe
        back = Handback(reactor)
        seen = []
        done = asyncio.Event()

        def note(thread, n):
            seen.append((thread, n))
            if len(seen) == 800:
                done.set()

        def worker(thread):
            for n in range(200):
                back.put(note, thread, n)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        loop.run_until_complete(asyncio.wait_for(done.wait(), 30))
        for t in threads:
            t.join()
        assert len(seen) == 800
        for thread in range(4):
            assert [n for t, n in seen if t == thread] == list(range(200))
        assert not reactor.getDelayedCalls()
    finally:
        loop.close()


def test_other_reactors_use_call_from_thread():
    reactor = CountingReactor()
    assert wake_up_function(reactor) == reactor.callFromThread


def test_private_reactor_names_exist():
    loop = asyncio.new_event_loop()
    try:
        reactor = asyncioreactor.AsyncioSelectorReactor(loop)
        for name in handback.PRIVATE_TWISTED_NAMES:
            assert hasattr(reactor, name), (
                f"Twisted's asyncio reactor has no {name!r} any more: txzserver.server.handback uses it")
    finally:
        loop.close()
