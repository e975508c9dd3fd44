"""txzserver.bus.publishers: LocalPublisher hands events to the reactor thread; ZmqBus sends
them through a real broker to every instance's hub (ipc:// in a temporary directory), with a
heartbeat per run that turns a loss no event follows into a gap."""

import json
import shutil
import socket
import threading

import pytest
import zmq
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from txzserver.bus import Event, IEventPublisher
from txzserver.bus.message import Heartbeat
from txzserver.bus.publishers import LocalPublisher, ZmqBus
from txzserver.websocket.fanout import Hub, Subscriber

from .zmqbroker import poll_readable, running_broker, short_dir, wait_for


class RecordingHub(Hub):
    def __init__(self):
        super().__init__()
        self.events = []
        self.heard_beats = []
        self.threads = []

    def deliver(self, event):
        (self.heard_beats if isinstance(event, Heartbeat) else self.events).append(event)
        self.threads.append(threading.current_thread())
        return super().deliver(event)


class QueueReactor(MemoryReactorClock):
    """callFromThread only queues (thread-safely); the test runs the queue as the reactor."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self.queued = []

    def callFromThread(self, f, *args, **kwargs):
        with self._lock:
            self.queued.append((f, args, kwargs))

    def run_queued(self):
        with self._lock:
            queued, self.queued = self.queued, []
        for f, args, kwargs in queued:
            f(*args, **kwargs)


def event(n, path="/Plone/news"):
    return Event("modified", f"{path}/item{n}", title=f"item {n}", guard={"Member"})


def texts(log_events):
    from twisted.logger import formatEvent
    return [formatEvent(e) for e in log_events]


# LocalPublisher

def test_local_publisher_provides_the_interface():
    assert verifyObject(IEventPublisher, LocalPublisher(QueueReactor(), Hub()))


def test_local_publisher_delivers_in_the_reactor_thread_in_order():
    reactor, hub = QueueReactor(), RecordingHub()
    publisher = LocalPublisher(reactor, hub)
    events = [event(i) for i in range(3)]
    worker = threading.Thread(target=publisher.publish, args=(events,))
    worker.start()
    worker.join(10)
    assert hub.events == []  # nothing delivered from the worker thread itself
    assert [f for f, _, _ in reactor.queued] == [hub.deliver] * 3
    reactor.run_queued()
    assert hub.events == events
    assert set(hub.threads) == {threading.current_thread()}
    publisher.close()
    publisher.close()


def test_local_publisher_of_nothing():
    reactor = QueueReactor()
    LocalPublisher(reactor, Hub()).publish([])
    assert reactor.queued == []


# ZmqBus with a broker

class Instance:
    """One process's bus: a hub, a reactor recording readers, and the ZmqBus."""

    def __init__(self, broker, name=None, **options):
        self.reactor = MemoryReactorClock()
        self.hub = RecordingHub()
        self.bus = ZmqBus(self.reactor, self.hub, broker.frontend, broker.backend, instance=name,
                          **options)

    def pump(self):
        poll_readable([self.bus.sub], 10)
        self.bus.doRead()

    def paths(self):
        return [e.path for e in self.hub.events if not e.path.startswith("/probe")]


def pump_all(instances):
    for instance in instances:
        instance.pump()


def joined(publisher, instances):
    """Publish probes from ``publisher`` until every instance received one (slow joiner)."""
    probe = Event("notification", "/probe", guard={"nobody"})

    def pump():
        publisher.bus.publish([probe])
        pump_all(instances)

    wait_for(lambda: all(any(e.path == "/probe" for e in i.hub.events) for i in instances), pump,
             what="the bus subscriptions to reach the broker")


@pytest.fixture
def broker(tmp_path):
    with running_broker(tmp_path) as broker:
        yield broker


@pytest.fixture
def instances(broker):
    made = [Instance(broker), Instance(broker)]
    yield made
    for instance in made:
        instance.bus.close()


def test_zmq_bus_provides_the_interfaces(instances):
    bus = instances[0].bus
    assert verifyObject(IEventPublisher, bus)
    assert verifyObject(IReadDescriptor, bus)
    assert isinstance(bus.fileno(), int)


def test_start_watches_the_sub_socket(instances):
    a = instances[0]
    a.bus.start()
    assert a.bus in a.reactor.getReaders()
    a.bus.close()
    assert a.bus not in a.reactor.getReaders()


def test_events_reach_every_instance_in_order_exactly_once(instances):
    a, b = instances
    joined(a, instances)
    events = [event(i) for i in range(20)]
    a.bus.publish(events[:10])
    a.bus.publish(events[10:])
    end = Event("notification", "/probe/end", guard={"nobody"})
    a.bus.publish([end])
    wait_for(lambda: all(any(e.path == end.path for e in i.hub.events) for i in instances),
             lambda: pump_all(instances), what="the end marker")
    expected = [e.path for e in events]
    assert a.paths() == expected  # the publishing instance hears its own events through the broker
    assert b.paths() == expected
    delivered = [e for e in b.hub.events if e.path.startswith("/Plone")]
    # equal after the wire round trip, guard included, once stamped by the publisher
    assert delivered == [e.stamped(a.bus.instance, a.bus.epoch, d.seq) for e, d in zip(events, delivered)]
    assert [d.seq for d in delivered] == list(range(delivered[0].seq, delivered[0].seq + 20))


def test_events_from_both_instances(instances):
    a, b = instances
    joined(a, instances)
    joined(b, instances)
    a.bus.publish([event(1, "/Plone/a")])
    b.bus.publish([event(2, "/Plone/b")])
    wait_for(lambda: all(len(i.paths()) == 2 for i in instances), lambda: pump_all(instances),
             what="both events")
    for instance in instances:
        assert sorted(instance.paths()) == ["/Plone/a/item1", "/Plone/b/item2"]


def test_received_events_go_through_the_hubs_guards(instances):
    a, b = instances
    sent = []
    b.hub.add(Subscriber({"Member"}, ["/Plone/news"], sent.append))
    joined(a, instances)
    a.bus.publish([event(1), Event("modified", "/Plone/news/secret", guard={"Manager"})])
    wait_for(lambda: len(b.paths()) == 2, b.pump, what="two events at b")
    assert len(sent) == 1
    assert b"item1" in sent[0] and b"Member" not in sent[0]


def test_malformed_message_is_dropped_counted_and_logged_once(instances, logged):
    a, b = instances
    joined(a, instances)
    bad = [b"not json at all", b'{"type": "created", "path": 5}',
           b'{"type": "created", "path": "/x", "colour": "blue"}',
           b'{"type": "created", "path": "/x", "title": ["a list"]}',
           b'{"type": "created", "path": "/x", "guard": "Anonymous"}',
           b'{"type": "created", "path": "/x", "guard": [1]}',
           b'{"type": "created", "path": "/x", "seq": "9"}',
           b'{"kind": "principals", "users": {"eve": "Manager"}}',
           b'{"kind": "principals", "users": {}, "admin": true}',
           b"[" * 5000 + b"]" * 5000]
    for data in bad:
        a.bus.pub.send(data)
    a.bus.publish([event(1)])
    wait_for(lambda: b.paths() == ["/Plone/news/item1"], b.pump, what="the good event")
    assert b.bus.invalid == len(bad)
    warnings = [t for t in texts(logged) if "not of its schema" in t]
    assert len(warnings) == 1  # at most once a minute: an injecting peer cannot flood the log


def test_start_drains_what_is_already_queued(instances):
    """The SUB socket's FD is edge-triggered: events queued before start() must be read."""
    a, b = instances
    joined(a, instances)
    a.bus.publish([event(i) for i in range(3)])
    wait_for(lambda: b.bus.sub.poll(0), lambda: poll_readable([b.bus.sub]),
             what="queued events at b")
    b.bus.start()
    wait_for(lambda: len(b.paths()) == 3, b.pump, what="the queued events")
    assert b.paths() == [f"/Plone/news/item{i}" for i in range(3)]


def test_publish_from_many_threads(instances):
    a, b = instances
    joined(a, instances)
    threads = [threading.Thread(target=a.bus.publish, args=([event(i, f"/Plone/t{t}") for i in
                                                              range(10)],)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    wait_for(lambda: len(b.paths()) == 40, b.pump, what="40 events")
    for t in range(4):  # each thread's events stay in order
        assert [p for p in b.paths() if p.startswith(f"/Plone/t{t}/")] == [
            f"/Plone/t{t}/item{i}" for i in range(10)]


def test_close_is_idempotent_and_publish_after_close_is_dropped(instances):
    a = instances[0]
    a.bus.start()
    a.bus.close()
    a.bus.close()
    a.bus.connectionLost(None)
    assert a.bus.pub.closed and a.bus.sub.closed
    assert a.bus not in a.reactor.getReaders()
    a.bus.publish([event(1)])  # no exception: the after-commit hook must not fail
    a.bus.doRead()
    assert a.hub.events == []


def test_close_without_start(broker):
    instance = Instance(broker)
    instance.bus.close()
    instance.bus.close()
    assert instance.bus.sub.closed


def test_full_bus_drops_with_a_warning(broker, logged, monkeypatch):
    instance = Instance(broker)
    try:
        def full(data, flags=0):
            raise zmq.Again()

        monkeypatch.setattr(instance.bus, "pub", type("Pub", (), {"send": staticmethod(full),
                                                                  "close": lambda self: None})())
        instance.bus.publish([event(1), event(2)])
        assert sum("event bus full" in t for t in texts(logged)) == 2
    finally:
        monkeypatch.undo()
        instance.bus.close()



# Sequence numbers: a lost event is noticed (and told to the clients), not silent

def published(instance):
    return [e for e in instance.hub.events if e.path.startswith("/Plone")]


def test_zmq_bus_stamps_instance_epoch_and_consecutive_numbers(broker):
    a, b = Instance(broker, name="alpha"), Instance(broker)
    try:
        joined(a, [b])
        before = a.bus.sent  # the probes used some numbers
        a.bus.publish([event(1), event(2)])
        a.bus.publish([event(3)])
        wait_for(lambda: len(b.paths()) == 3, b.pump, what="three events at b")
        assert [e.seq for e in published(b)] == [before + 1, before + 2, before + 3]
        assert {(e.instance, e.epoch) for e in published(b)} == {("alpha", a.bus.epoch)}
        assert b.hub.gaps == 0
    finally:
        a.bus.close()
        b.bus.close()


def test_each_bus_is_a_new_run_and_instance_defaults_to_the_host_name(broker):
    first, second = Instance(broker), Instance(broker, name="x")
    try:
        assert first.bus.instance == socket.gethostname()  # the default of instance-name
        assert second.bus.instance == "x"
        assert first.bus.epoch != second.bus.epoch and len(first.bus.epoch) == 16
        assert first.bus.sent == second.bus.sent == 0
    finally:
        first.bus.close()
        second.bus.close()


def test_pub_socket_queues_only_on_a_live_connection(instances):
    """While the broker is down events are dropped (and become a gap), not queued for later."""
    assert instances[0].bus.pub.getsockopt(zmq.IMMEDIATE) == 1


def test_an_event_dropped_at_the_publisher_still_uses_its_number(instances, monkeypatch, logged):
    a, b = instances
    joined(a, instances)
    sent = []
    b.hub.add(Subscriber({"Member"}, ["/Plone"], sent.append))
    real_send, calls = a.bus.pub.send, []

    def full_once(data, flags=0):
        calls.append(data)
        if len(calls) == 2:
            raise zmq.Again()
        return real_send(data, flags)

    monkeypatch.setattr(a.bus.pub, "send", full_once)
    a.bus.publish([event(1), event(2), event(3)])
    wait_for(lambda: len(b.paths()) == 2, b.pump, what="two of three events at b")
    assert b.paths() == ["/Plone/news/item1", "/Plone/news/item3"]
    messages = [json.loads(m) for m in sent]
    assert [m["type"] for m in messages] == ["modified", "gap", "modified"]
    assert messages[1] == {"type": "gap", "instance": a.bus.instance, "missed": 1}
    assert b.hub.gaps == 1
    assert any("dropped an event" in t for t in texts(logged))


# Heartbeats: each run's last number, every heartbeat_interval and at close

def beats_of(instance, publisher):
    return [h for h in instance.hub.heard_beats
            if (h.instance, h.epoch) == (publisher.bus.instance, publisher.bus.epoch)]


def test_heartbeat_at_start_and_every_interval_carries_the_last_number(broker):
    a, b = Instance(broker, name="alpha", heartbeat_interval=2.0), Instance(broker)
    try:
        a.bus.start()  # the first heartbeat goes now (the broker may not know a yet: lost)
        joined(a, [b])
        a.bus.publish([event(1), event(2)])
        last = a.bus.sent

        def beat():
            a.reactor.advance(2.0)  # the LoopingCall's next heartbeat, on a's clock
            b.pump()
        wait_for(lambda: any(h.seq == last for h in beats_of(b, a)), beat,
                 what="a heartbeat carrying the last number")
        assert not any(h.final for h in beats_of(b, a))
        assert b.hub.heartbeats == len(b.hub.heard_beats) >= 1
        assert b.bus.received == len(b.hub.events)  # heartbeats are not counted as events
        assert b.hub.gaps == 0
    finally:
        a.bus.close()
        b.bus.close()


def test_heartbeats_stop_at_close_with_a_final_one(broker):
    a, b = Instance(broker, name="alpha"), Instance(broker)
    try:
        a.bus.start()
        joined(a, [b])
        a.bus.publish([event(1)])
        a.bus.close()
        assert not a.bus._beat.running and a.reactor.getDelayedCalls() == []
        wait_for(lambda: any(h.final for h in beats_of(b, a)), b.pump, what="the final heartbeat")
        final = [h for h in beats_of(b, a) if h.final]
        assert len(final) == 1 and final[0].seq == a.bus.sent
        assert ("alpha", a.bus.epoch) not in b.hub.sequences.last  # the hub forgot the run
    finally:
        a.bus.close()
        b.bus.close()


def test_events_lost_while_the_broker_is_down_become_one_gap_without_a_later_event(tmp_path):
    """alpha publishes while the broker is down (ZMQ_IMMEDIATE: dropped at once), then
    publishes nothing more: its next heartbeat after the broker is back tells b the loss."""
    base, cleanup = short_dir(tmp_path)
    a = b = None
    try:
        with running_broker(tmp_path, sub="bus", base=base) as first:
            a = Instance(first, name="alpha", watch=True)  # watch: to see a's link go down
            b = Instance(first)
            sent = []
            b.hub.add(Subscriber({"Member"}, ["/Plone"], sent.append))
            a.bus.start()
            joined(a, [b])
            a.bus.publish([event(1)])
            wait_for(lambda: "/Plone/news/item1" in b.paths(), b.pump, what="item1 at b")
        wait_for(lambda: not a.bus.links_up()[first.frontend], what="a to see the broker gone")
        a.bus.publish([event(2), event(3), event(4)])  # nowhere to go: dropped
        with running_broker(tmp_path, sub="bus", base=base):
            def beat():
                a.reactor.advance(a.bus.heartbeat_interval)
                b.pump()
            wait_for(lambda: b.hub.gaps, beat, what="the gap at b")
            heard = b.hub.heartbeats
            wait_for(lambda: b.hub.heartbeats >= heard + 3, beat, what="three more heartbeats")
        gaps = [json.loads(m) for m in sent if json.loads(m)["type"] == "gap"]
        assert gaps == [{"type": "gap", "instance": "alpha", "missed": 3}]
        assert (b.hub.gaps, b.hub.heartbeat_gaps) == (1, 1)
        assert "/Plone/news/item2" not in b.paths()
    finally:
        for instance in (a, b):
            if instance is not None:
                instance.bus.close()
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)


def test_heartbeat_interval_is_configured_in_the_event_bus_section(tmp_path):
    from txzserver.config import ConfigError, load
    from .test_ws_config import conf

    for sub in ("etc", "var", "log"):
        (tmp_path / sub).mkdir()
    bus = "<event-bus>\n  publish ipc:///tmp/txz-hb/p.sock\n  subscribe ipc:///tmp/txz-hb/s.sock\n"
    path, _ = conf(tmp_path, bus + "</event-bus>\n")
    assert load(path)[1].event_bus.heartbeat_interval == 5.0  # the default
    path, _ = conf(tmp_path, bus + "  heartbeat-interval 1s\n</event-bus>\n")
    assert load(path)[1].event_bus.heartbeat_interval == 1.0
    for bad in ("0", "2m"):
        path, _ = conf(tmp_path, bus + f"  heartbeat-interval {bad}\n</event-bus>\n")
        with pytest.raises(ConfigError, match="heartbeat-interval must be between 1s and 60s"):
            load(path)
