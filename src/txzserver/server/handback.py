"""Hand results from publisher threads to the reactor: one wake-up per batch, not per result.

Twisted's ``deferToThreadPool`` returns each result through ``reactor.callFromThread``; the
asyncio reactor turns that into ``call_soon_threadsafe`` of a ``callLater(0, ...)``: a
wake-up, a DelayedCall and a timer per response, measured at about a tenth of the reactor
thread's work for a small request. Here a worker appends to a queue and wakes the reactor
only when the queue was empty; the reactor runs everything queued in one call.
"""

import threading
from collections import deque

from twisted.logger import Logger

log = Logger()

#: Reactor internals this module relies on (checked by tests/unit/test_handback.py).
PRIVATE_TWISTED_NAMES = ("_asyncioEventloop",)  # the asyncio loop under Twisted's asyncioreactor


def wake_up_function(reactor):
    """The cheapest way for another thread to run a callable in ``reactor``'s thread.

    On Twisted's asyncio reactor (uvloop included) the loop's own ``call_soon_threadsafe``
    runs the callable on the loop's next turn without a DelayedCall; elsewhere (epoll,
    test reactors) ``callFromThread``.
    """
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is not None:
        return loop.call_soon_threadsafe
    return reactor.callFromThread


class Handback:
    """Calls queued by worker threads, run by the reactor in the order they were queued.

    ``put`` may be called from any thread; the calls run in the reactor thread. An
    exception raised by one call is logged and does not stop the others.
    """

    def __init__(self, reactor):
        self._wake = wake_up_function(reactor)
        self._lock = threading.Lock()
        self._queue = deque()
        self._scheduled = False

    def put(self, function, *args):
        """Run ``function(*args)`` in the reactor thread soon (any thread)."""
        with self._lock:
            self._queue.append((function, args))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._wake(self._run)
        except RuntimeError as exc:  # the loop is closed: the server has stopped
            log.debug("not handed back, the reactor has stopped: {error}", error=exc)

    def _run(self):
        """Reactor thread: run what is queued, including calls queued meanwhile."""
        queue = self._queue
        while True:
            with self._lock:
                if not queue:
                    self._scheduled = False
                    return
                function, args = queue.popleft()
            try:
                function(*args)
            except Exception:
                log.failure("a call handed back from a publisher thread failed")
