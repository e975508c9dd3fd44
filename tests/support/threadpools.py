"""Thread-pool fakes for tests without threads (the ThreadPool API the server uses)."""

from twisted.python.failure import Failure


class SynchronousThreadPool:
    """Runs the worker's function at once, in the test's thread; ``calls`` counts them."""

    def __init__(self):
        self.calls = 0

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        self.calls += 1
        try:
            result = f(*args, **kwargs)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)


class ManualThreadPool:
    """Keeps the calls until ``run`` (a worker that has not started yet)."""

    def __init__(self):
        self.calls = []

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        self.calls.append((onResult, f, args, kwargs))

    def run(self):
        calls, self.calls = self.calls, []
        for onResult, f, args, kwargs in calls:
            SynchronousThreadPool().callInThreadWithCallback(onResult, f, *args, **kwargs)
