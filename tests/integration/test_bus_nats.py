"""The nats event bus against real nats-server nodes (tests/support/nats.py).

First NatsBus objects in this process (each with its own hub, a thread acting as its reactor)
for the failure cases that need many events: a NATS restart (clean and kill -9) during a
burst of 1,000, an instance away and back, retention that really loses events, a node of a
3-node cluster killed. Then two real txzserver instances on ZEO with WebSocket clients.
"""

import threading
import time

import pytest

from txzserver.bus import Event
from txzserver.bus.natsbus import NatsBus
from txzserver.bus.natsconn import NatsLoop
from txzserver.config.datatypes import EventBusSettings
from txzserver.websocket.fanout import Hub

from tests.support.nats import NatsCluster, NatsServer
from tests.support.server import wait_for

BURST = 1000


class PumpReactor:
    """What NatsBus needs of a reactor: ``callFromThread``, run in order by one thread (the
    bus's "reactor thread") until stopped."""

    def __init__(self):
        self._calls = []
        self._cond = threading.Condition()
        self._stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="pump-reactor")
        self.thread.start()

    def callFromThread(self, function, *args):
        with self._cond:
            self._calls.append((function, args))
            self._cond.notify()

    def _run(self):
        while True:
            with self._cond:
                while not self._calls and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                calls, self._calls = self._calls, []
            for function, args in calls:
                function(*args)

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


@pytest.fixture
def nodes():
    made = []

    def make(urls, name, **fields):
        node = Node(urls, name, **fields)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()
    NatsLoop.instance().stop()


@pytest.fixture
def nats(tmp_path):
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.kill()


def events(prefix, count, start=0):
    return [Event("created", f"/Plone/{prefix}/{n}", guard={"Anonymous"})
            for n in range(start, start + count)]


def expected(prefix, count, start=0):
    return [f"/Plone/{prefix}/{n}" for n in range(start, start + count)]


def delivered(node, prefix):
    return [path for path in list(node.hub.paths) if path.startswith(f"/Plone/{prefix}/")]


def wait_delivered(node, prefix, count, timeout=60):
    wait_for(lambda: len(delivered(node, prefix)) >= count, timeout,
             what=f"{count} events of {prefix} at {node.bus.instance}")


def test_an_event_reaches_every_instance_once(nats, nodes):
    a, b = nodes([nats.url], "a").ready(), nodes([nats.url], "b").ready()
    a.bus.publish(events("one", 1))
    wait_delivered(b, "one", 1)
    wait_for(lambda: a.bus.published == 1 and a.bus.lag is not None, 10, what="came back")
    time.sleep(0.5)  # long enough for a stray second delivery
    assert delivered(a, "one") == delivered(b, "one") == expected("one", 1)
    assert a.bus.arrivals.duplicates == 1  # its own copy from the stream, not delivered again
    assert a.hub.gap_list == b.hub.gap_list == []


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_nats_restart_during_a_burst_loses_nothing(nats, nodes, how):
    """1,000 events published while nats-server is stopped (SIGTERM, or kill -9) and started
    again mid-burst: each instance delivers all 1,000 once, in order, and no gap."""
    a, b = nodes([nats.url], "a").ready(), nodes([nats.url], "b").ready()
    burst = events("burst", BURST)
    a.bus.publish(burst[:300])
    getattr(nats, how)()
    a.bus.publish(burst[300:700])  # NATS is away: they wait in a's queue
    wait_for(lambda: not any(a.bus.links_up().values()), 30, what="a sees NATS down")
    nats.start()
    a.bus.publish(burst[700:])
    for node in (a, b):
        wait_delivered(node, "burst", BURST, timeout=120)
    time.sleep(1)
    for node in (a, b):
        assert delivered(node, "burst") == expected("burst", BURST), node.bus.instance
        assert node.hub.gap_list == []
    assert a.bus.dropped == 0


def test_an_instance_away_gets_what_it_missed_once(nats, nodes, tmp_path):
    a, b = nodes([nats.url], "a").ready(), nodes([nats.url], "b").ready()
    a.bus.publish(events("before", 10))
    wait_delivered(b, "before", 10)
    b.close()
    a.bus.publish(events("away", 300))
    wait_for(lambda: a.bus.published == 310, 30, what="published")
    b2 = nodes([nats.url], "b").ready()  # the same instance name: its durable consumer
    wait_delivered(b2, "away", 300)
    a.bus.publish(events("after", 5))
    wait_delivered(b2, "after", 5)
    time.sleep(0.5)
    assert delivered(b2, "before") == []  # acknowledged before it went away
    assert delivered(b2, "away") == expected("away", 300)
    assert delivered(b2, "after") == expected("after", 5)
    assert b2.hub.gap_list == []


def test_retention_loss_is_exactly_one_gap(nats, nodes):
    """A stream kept small (max-bytes): an instance away while more than it holds was
    published gets one gap, then the events still kept, in order."""
    small = {"stream": "SMALL", "max_bytes": 64 * 1024}
    a, b = nodes([nats.url], "a", **small).ready(), nodes([nats.url], "b", **small).ready()
    a.bus.publish(events("seen", 3))
    wait_delivered(b, "seen", 3)
    b.close()
    a.bus.publish(events("lost", 1000))  # ~250 KB of events: most are gone from the stream
    wait_for(lambda: a.bus.published == 1003, 60, what="published")
    b2 = nodes([nats.url], "b", **small).ready()
    a.bus.publish(events("later", 3))
    wait_delivered(b2, "later", 3)
    time.sleep(0.5)
    assert len(b2.hub.gap_list) == 1, b2.hub.gap_list
    [(who, missed)] = b2.hub.gap_list
    kept = delivered(b2, "lost")
    assert who == "SMALL" and missed == 1000 - len(kept) and 0 < len(kept) < 1000
    assert kept == expected("lost", 1000)[-len(kept):]  # the newest ones, in order
    assert delivered(b2, "later") == expected("later", 3)
    assert a.hub.gap_list == []


def test_a_cluster_node_killed_during_a_burst_loses_nothing(tmp_path, nodes):
    cluster = NatsCluster(tmp_path / "cluster", 3).start()
    try:
        a = nodes(cluster.urls, "a").ready(60)
        b = nodes(cluster.urls[::-1], "b").ready(60)
        burst = events("cburst", BURST)
        a.bus.publish(burst[:400])
        wait_for(lambda: a.bus.published >= 100, 30, what="burst under way")
        cluster.nodes[0].kill()
        a.bus.publish(burst[400:])
        for node in (a, b):
            wait_delivered(node, "cburst", BURST, timeout=120)
        time.sleep(1)
        for node in (a, b):
            assert delivered(node, "cburst") == expected("cburst", BURST), node.bus.instance
            assert node.hub.gap_list == []
    finally:
        for node in cluster.nodes:
            node.kill()
