"""The nats bus without a socket: subjects and ids, the stream's configuration, ``Arrivals``
(what is new, what was lost), and NatsBus's publish side (stamps, own delivery at once, the
bounded queue) before it ever connects."""

import threading

import pytest
from zope.interface.verify import verifyObject

from txzserver.bus import Event, IEventPublisher, PrincipalChange
from txzserver.bus.natsbus import NatsBus
from txzserver.bus.natsconn import NatsLoop
from txzserver.bus.natsstream import (Arrivals, message_id, replicas_for, stream_config,
                                      subject_of, token, unnumbered)
from txzserver.config.datatypes import EventBusSettings
from txzserver.websocket.fanout import Hub

from .test_bus_publishers import QueueReactor


def event(n, path="/Plone/news", instance="a", epoch="e1"):
    return Event("modified", f"{path}/item{n}", guard={"Member"}).stamped(instance, epoch, n)


def bus_settings(**fields):
    fields.setdefault("nats_servers", ("nats://127.0.0.1:1",))
    return EventBusSettings("ipc:///a", "ipc:///b", backend="nats", **fields)


# subjects, ids, the stream

def test_subject_is_stream_and_site():
    assert subject_of("TXZ", event(1)) == "TXZ.Plone"
    assert subject_of("TXZ", Event("created", "/my.site/x")) == "TXZ.my_site"
    assert subject_of("TXZ", PrincipalChange(site="/Plone")) == "TXZ.Plone"
    assert subject_of("TXZ", PrincipalChange()) == "TXZ.all"
    assert subject_of("TXZ", Event("created", "/")) == "TXZ.all"


def test_token_replaces_what_nats_refuses():
    assert token("instance-1") == "instance-1"
    assert token("web 1.example.com>*") == "web_1_example_com__"
    assert token("") == "_"


def test_message_id_is_instance_epoch_seq():
    assert message_id(event(7)) == "a:e1:7"


def test_stream_config_limits_and_duplicate_window():
    config = stream_config(bus_settings(stream="EV", max_age=3600.0, max_bytes=2048), 3)
    assert config.name == "EV" and config.subjects == ["EV.>"]
    assert (config.max_age, config.max_bytes, config.num_replicas) == (3600.0, 2048, 3)
    assert config.storage.value == "file" and config.discard.value == "old"
    assert config.duplicate_window == 300.0
    assert stream_config(bus_settings(max_age=60.0), 1).duplicate_window == 60.0


def test_replicas_three_for_a_cluster_else_one():
    assert replicas_for(["nats://a"]) == 1
    assert replicas_for(["nats://a", "nats://b"]) == 1
    assert replicas_for(["nats://a", "nats://b", "nats://c"]) == 3


def test_unnumbered_keeps_the_id_parts_but_not_the_number():
    plain = unnumbered(event(5))
    assert (plain.instance, plain.epoch, plain.seq) == ("a", "e1", 0)
    assert unnumbered(PrincipalChange(users={"u": ["r"]}).stamped("a", "e", 3)).seq == 0


# Arrivals

def test_in_order_events_are_new_and_nothing_is_lost():
    arrivals = Arrivals()
    assert [arrivals.arrive(n + 10, event(n)) for n in range(1, 4)] == [(0, None, True)] * 3


def test_redelivery_after_a_reconnect_is_a_duplicate_not_a_gap():
    arrivals = Arrivals()
    for n in range(1, 6):
        arrivals.arrive(n, event(n))
    # the acknowledgements of 4 and 5 were lost: NATS delivers them again
    assert arrivals.arrive(4, event(4)) == (0, None, False)
    assert arrivals.arrive(5, event(5)) == (0, None, False)
    assert arrivals.arrive(6, event(6)) == (0, None, True)
    assert arrivals.duplicates == 2


def test_own_events_delivered_locally_are_not_delivered_again():
    arrivals = Arrivals(own_run=("a", "e1"))
    for n in (1, 2):
        arrivals.local(event(n))
    assert arrivals.arrive(1, event(1)) == (0, None, False)
    assert arrivals.arrive(2, event(2)) == (0, None, False)
    assert arrivals.arrive(3, event(1, instance="b")) == (0, None, True)


def test_a_stream_jump_is_one_gap_even_when_runs_jump_too():
    """Retention removed stream 3..7 (events 3..7 of run a): one gap of 5, named by nobody."""
    arrivals = Arrivals()
    arrivals.arrive(1, event(1))
    arrivals.arrive(2, event(2))
    assert arrivals.arrive(8, event(8)) == (5, None, True)
    assert arrivals.arrive(9, event(9)) == (0, None, True)
    # run b, known before the loss, restarts its baseline too: no second gap
    arrivals2 = Arrivals()
    arrivals2.arrive(1, event(1, instance="b"))
    arrivals2.arrive(2, event(1))
    assert arrivals2.arrive(10, event(9)) == (7, None, True)
    assert arrivals2.arrive(11, event(6, instance="b")) == (0, None, True)


def test_a_resumed_consumer_compares_with_its_acknowledged_floor():
    arrivals = Arrivals(stream_seq=100)
    assert arrivals.arrive(101, event(40)) == (0, None, True)  # first of a run: baseline
    lost = Arrivals(stream_seq=100)
    assert lost.arrive(151, event(90)) == (50, None, True)


def test_a_run_that_dropped_events_is_a_gap_named_by_its_instance():
    arrivals = Arrivals()
    arrivals.arrive(1, event(1, instance="b"))
    assert arrivals.arrive(2, event(5, instance="b")) == (3, "b", True)


def test_own_run_jumps_are_no_gap_here():
    """Events this instance could not publish were delivered to its own clients already."""
    arrivals = Arrivals(own_run=("a", "e1"))
    arrivals.local(event(1))
    arrivals.arrive(1, event(1))
    assert arrivals.arrive(2, event(4)) == (0, None, True)


def test_unreadable_message_moves_the_stream_on_without_a_gap():
    arrivals = Arrivals()
    arrivals.arrive(1, event(1))
    assert arrivals.arrive(2, None) == (0, None, False)
    assert arrivals.arrive(3, event(2)) == (0, None, True)


def test_recent_ids_and_runs_are_bounded():
    arrivals = Arrivals(recent=3, runs=2)
    for n in range(1, 10):
        arrivals.arrive(n, event(1, instance=f"i{n}"))
    assert len(arrivals.recent) == 3 and len(arrivals.runs) == 2


# NatsBus before it connects

@pytest.fixture
def loop():
    loop = NatsLoop()
    yield loop
    loop.stop()


class RecordingHub(Hub):
    def __init__(self):
        super().__init__()
        self.events = []

    def deliver(self, event):
        self.events.append(event)
        return super().deliver(event)


def test_nats_bus_provides_the_interface(loop):
    assert verifyObject(IEventPublisher, NatsBus(QueueReactor(), Hub(), bus_settings(), loop=loop))


def test_publish_stamps_delivers_own_events_at_once_and_queues_them(loop):
    reactor, hub = QueueReactor(), RecordingHub()
    bus = NatsBus(reactor, hub, bus_settings(), instance="web 1", loop=loop)
    assert bus.consumer == "web_1"
    bus.publish([Event("created", "/Plone/a"), Event("created", "/Plone/b")])
    assert [(e.instance, e.epoch, e.seq) for e in bus._queue] == [
        ("web 1", bus.epoch, 1), ("web 1", bus.epoch, 2)]
    assert hub.events == []  # in the reactor thread, not the publisher's
    reactor.run_queued()
    assert [e.path for e in hub.events] == ["/Plone/a", "/Plone/b"]
    assert [e.seq for e in hub.events] == [0, 0]  # the hub does not count runs
    assert bus.sent == 2 and bus.dropped == 0


def test_beyond_the_bound_events_are_dropped_but_still_reach_own_clients(loop):
    reactor, hub = QueueReactor(), RecordingHub()
    bus = NatsBus(reactor, hub, bus_settings(high_water_mark=3), loop=loop)
    bus.publish([Event("created", f"/Plone/{n}") for n in range(5)])
    assert len(bus._queue) == 3 and bus.dropped == 2 and bus.sent == 5
    reactor.run_queued()
    assert len(hub.events) == 5


def test_publish_from_many_threads_numbers_every_event_once(loop):
    bus = NatsBus(QueueReactor(), Hub(), bus_settings(), loop=loop)
    threads = [threading.Thread(target=lambda: [bus.publish([Event("created", "/P/x")])
                                                for _ in range(200)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e.seq for e in bus._queue) == list(range(1, 801))
    assert [e.seq for e in bus._queue] == list(range(1, 801))  # queued in number order


def test_links_down_before_connecting_and_publish_after_close_is_dropped(loop):
    bus = NatsBus(QueueReactor(), Hub(), bus_settings(), loop=loop)
    assert bus.links_up() == {"nats://127.0.0.1:1": False}
    bus.close()
    bus.publish([Event("created", "/Plone/a")])
    assert bus.sent == 0
    bus.close()  # idempotent
