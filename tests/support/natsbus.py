"""NatsBus objects in a test process: each with its own hub and a thread acting as its
reactor, for tests that need many events fast (tests/integration/test_bus_nats.py) or a
publisher on an instance's stream (test_bus_nats.py, test_listen_durable.py): ``made_nodes``,
``publishing``. Their PumpReactor drives test_tasks_nats_queue.py's task backends too."""

import contextlib
import threading

from txzserver.bus import Event
from txzserver.bus.natsbus import NatsBus
from txzserver.bus.natsconn import NatsLoop
from txzserver.config.datatypes import EventBusSettings
from txzserver.websocket.fanout import Hub

from .server import wait_for


class PumpReactor:
    """What NatsBus, NatsBackend and TaskRunner need of a reactor: ``callFromThread`` and
    ``callLater``, run in order by one thread (the "reactor thread") until stopped; ``call``
    runs a function there from the test's thread and returns its result."""

    def __init__(self):
        self._calls = []
        self._cond = threading.Condition()
        self._stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="pump-reactor")
        self.thread.start()

    def callFromThread(self, function, *args, **kwargs):
        with self._cond:
            self._calls.append((function, args, kwargs))
            self._cond.notify()

    def callLater(self, delay, function, *args, **kwargs):
        timer = threading.Timer(delay, self.callFromThread, (function, *args), kwargs)
        timer.daemon = True
        timer.start()

    def call(self, function, *args):
        """From the test's thread: run ``function`` in the reactor thread, return its result."""
        done, result = threading.Event(), []
        self.callFromThread(lambda: (result.append(function(*args)), done.set()))
        assert done.wait(30), f"{function} did not return in the reactor thread within 30 s"
        return result[0]

    def _run(self):
        while True:
            with self._cond:
                while not self._calls and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                calls, self._calls = self._calls, []
            for function, args, kwargs in calls:
                function(*args, **kwargs)

    def stop(self):
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self.thread.join(5)


class RecordingHub(Hub):
    """A hub that keeps what it delivered and the gaps it announced."""

    def __init__(self):
        super().__init__()
        self.paths = []
        self.gap_list = []

    def deliver(self, event):
        self.paths.append(event.path)
        return super().deliver(event)

    def announce_gap(self, instance, missed):
        self.gap_list.append((instance, missed))
        super().announce_gap(instance, missed)


def settings_for(urls, **fields):
    return EventBusSettings("ipc:///unused", "ipc:///unused", backend="nats",
                            nats_servers=tuple(urls), **fields)


class Node:
    """One bus "instance": a NatsBus with its hub and reactor thread."""

    def __init__(self, urls, name, **fields):
        self.reactor = PumpReactor()
        self.hub = RecordingHub()
        self.bus = NatsBus(self.reactor, self.hub, settings_for(urls, **fields), instance=name)
        self.reactor.callFromThread(self.bus.start)

    def ready(self, timeout=30):
        wait_for(lambda: all(self.bus.links_up().values()), timeout, what="bus connected")
        return self

    def close(self):
        self.bus.close()
        self.reactor.stop()


@contextlib.contextmanager
def made_nodes():
    """``make(urls, name, **fields)`` -> a new Node; every one made is closed afterwards, and
    the process's NATS loop stopped (the next test's nodes start a new one)."""
    made = []

    def make(urls, name, **fields):
        made.append(Node(urls, name, **fields))
        return made[-1]

    try:
        yield make
    finally:
        for node in made:
            node.close()
        NatsLoop.instance().stop()


@contextlib.contextmanager
def publishing(urls, name, timeout=30, **fields):
    """A Node of the test's own, connected (``ready``), publishing on the stream as an
    instance would; closed afterwards with the NATS loop."""
    with made_nodes() as make:
        yield make(urls, name, **fields).ready(timeout)


def public_events(prefix, count, start=0):
    """``count`` created events under /Plone/PREFIX/ that anonymous visitors may see."""
    return [Event("created", f"/Plone/{prefix}/{n}", guard={"Anonymous"})
            for n in range(start, start + count)]
