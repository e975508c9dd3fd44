"""How many requests of one connection may wait for or hold publisher threads at once.

HTTP/2 lets one client send a hundred requests at once (or thousands, resetting each right
after its HEADERS: Rapid Reset). Without a bound they would all queue on the shared thread
pool ahead of everybody else's. Each connection gets a ``PublishQueue``: at most ``limit`` of
its requests are in the pool (queued or running); the rest wait here in order, and a request
whose client went away before its turn is dropped without being published.
"""

from collections import deque


class Admission:
    """The process's figures over every ``PublishQueue`` (for the metrics): requests held at
    their connection now, and requests dropped unpublished so far. Reactor thread only."""

    def __init__(self):
        self.held = 0
        self.dropped = 0


class PublishQueue:
    """Admission of one connection's requests to the publisher pool. Reactor thread only.

    ``totals`` (an ``Admission`` shared by all connections) is kept up to date too."""

    def __init__(self, limit, totals=None):
        self.limit = max(1, limit)
        self.active = 0
        self.waiting = deque()
        self.dropped = 0
        self.totals = totals if totals is not None else Admission()

    def submit(self, start, is_gone):
        """Call ``start()`` (returning a Deferred that fires when the request left the pool)
        now if the connection has room, else once it has; never if ``is_gone()`` by then."""
        if self.active < self.limit:
            self._start(start)
        else:
            self.waiting.append((start, is_gone))
            self.totals.held += 1

    def _start(self, start):
        self.active += 1
        start().addBoth(self._left_pool)

    def _left_pool(self, result):
        self.active -= 1
        while self.waiting and self.active < self.limit:
            start, is_gone = self.waiting.popleft()
            self.totals.held -= 1
            if is_gone():
                self.dropped += 1
                self.totals.dropped += 1
                continue
            self._start(start)
        return result
