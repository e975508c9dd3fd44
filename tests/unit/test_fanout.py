"""txzserver.websocket.fanout: path normalisation and matching on whole segments, who wants
an event (guard tokens and subscribed paths), and the hub's delivery."""

import json

import pytest

from txzserver.bus import Event
from txzserver.bus.message import Heartbeat
from txzserver.websocket.fanout import Hub, Sequences, Subscriber, normalize_path, path_matches


# Paths

@pytest.mark.parametrize("path, normal", [
    ("/Plone/news", "/Plone/news"),
    ("/Plone/news/", "/Plone/news"),
    ("/Plone/news///", "/Plone/news"),
    ("/", "/"),
    ("//", "/"),
    ("/Plone", "/Plone"),
    ("/Plone/...hidden", "/Plone/...hidden"),
])
def test_normalize_path(path, normal):
    assert normalize_path(path) == normal


@pytest.mark.parametrize("path", ["Plone/news", "", "news", "../Plone", "http://x/Plone", None, 42,
                                  ["/Plone"]])
def test_normalize_path_rejects_relative_paths(path):
    with pytest.raises(ValueError, match="absolute"):
        normalize_path(path)


@pytest.mark.parametrize("path", ["/Plone/../etc", "/..", "/Plone/./news", "/Plone/news/.."])
def test_normalize_path_rejects_dot_segments(path):
    with pytest.raises(ValueError, match=r"\.\."):
        normalize_path(path)


@pytest.mark.parametrize("prefix, path, matches", [
    ("/Plone/news", "/Plone/news", True),
    ("/Plone/news", "/Plone/news/a", True),
    ("/Plone/news", "/Plone/news/a/b", True),
    ("/Plone/news", "/Plone/newsletter", False),
    ("/Plone/news", "/Plone/newsletter/a", False),
    ("/Plone/news", "/Plone", False),
    ("/Plone/news", "/Plone/new", False),
    ("/Plone", "/Plone2/x", False),
    ("/", "/Plone/news", True),
    ("/", "/", True),
])
def test_path_matches_on_whole_segments(prefix, path, matches):
    assert path_matches(prefix, path) is matches


# Subscribers

def event(path="/Plone/news/a", guard=("Member",), **fields):
    return Event("created", path, guard=frozenset(guard), **fields)


def test_wants_needs_a_common_token_and_a_matching_path():
    sub = Subscriber({"Member", "user:jane"}, ["/Plone/news"], None)
    assert sub.wants(event())
    assert sub.wants(event(guard=("user:jane",)))
    assert not sub.wants(event(guard=("Manager",)))  # path matches, tokens do not
    assert not sub.wants(event(path="/Plone/events/x"))  # tokens match, path does not
    assert not sub.wants(event(path="/Plone/newsletter"))
    assert not sub.wants(event(guard=()))  # an empty guard is seen by nobody


def test_wants_any_of_several_paths():
    sub = Subscriber(["Member"], ["/Plone/news", "/Plone/events"], None)
    assert sub.wants(event("/Plone/events/party"))
    assert sub.wants(event("/Plone/news"))
    assert not sub.wants(event("/Plone/front-page"))


def test_subscriber_without_paths_wants_nothing():
    assert not Subscriber(["Member"], [], None).wants(event())


# The hub

class Recorder:
    def __init__(self, tokens=("Member",), paths=("/Plone",)):
        self.sent = []
        self.subscriber = Subscriber(tokens, paths, self.sent.append)


def test_deliver_sends_to_those_who_may_see_it_and_counts():
    hub = Hub()
    jane, bob, other_site = Recorder(), Recorder(tokens=("user:bob",)), Recorder(paths=("/Other",))
    for r in (jane, bob, other_site):
        hub.add(r.subscriber)
    assert len(hub) == 3
    assert hub.deliver(event()) == 1
    assert hub.deliver(event(guard=("Member", "user:bob"))) == 2
    assert hub.delivered == 3
    assert len(jane.sent) == 2 and len(bob.sent) == 1 and other_site.sent == []


def test_deliver_serializes_once_and_never_sends_the_guard(monkeypatch):
    hub = Hub()
    recorders = [Recorder() for _ in range(3)]
    for r in recorders:
        hub.add(r.subscriber)
    calls = []
    real_dumps = json.dumps
    monkeypatch.setattr(json, "dumps", lambda *a, **k: calls.append(a) or real_dumps(*a, **k))
    hub.deliver(event(title="Hello", guard=("Member", "Secret-Token")))
    assert len(calls) == 1
    payloads = {r.sent[0] for r in recorders}
    assert len(payloads) == 1  # the same bytes object for everybody
    [payload] = payloads
    assert isinstance(payload, bytes)
    data = json.loads(payload)
    assert data["title"] == "Hello"
    assert "guard" not in data
    assert b"Secret-Token" not in payload and b"Member" not in payload


def test_deliver_to_nobody_does_not_serialize(monkeypatch):
    hub = Hub()
    hub.add(Recorder(tokens=("user:bob",)).subscriber)
    monkeypatch.setattr(json, "dumps", lambda *a, **k: pytest.fail("serialized for nobody"))
    assert hub.deliver(event()) == 0
    assert hub.delivered == 0


def test_remove_and_remove_twice():
    hub = Hub()
    r = Recorder()
    hub.add(r.subscriber)
    hub.remove(r.subscriber)
    hub.remove(r.subscriber)
    assert len(hub) == 0
    assert hub.deliver(event()) == 0
    assert r.sent == []


def test_subscriber_may_leave_during_delivery():
    hub = Hub()
    first, second = Recorder(), Recorder()

    def leave(payload):
        first.sent.append(payload)
        hub.remove(second.subscriber)
        hub.remove(first.subscriber)

    first.subscriber.send = leave
    hub.add(first.subscriber)
    hub.add(second.subscriber)
    assert hub.deliver(event()) in (1, 2)  # the set was copied: no RuntimeError
    assert len(hub) == 0


def test_subscription_changes_apply_to_the_next_event():
    hub = Hub()
    r = Recorder(paths=("/Plone/news",))
    hub.add(r.subscriber)
    assert hub.deliver(event("/Plone/events/x")) == 0
    r.subscriber.paths.add("/Plone/events")
    assert hub.deliver(event("/Plone/events/x")) == 1


# Sequence numbers: noticing lost events, so clients can reload instead of missing them

def stamped(seq, instance="alpha", epoch="run-1", path="/Plone/news/a", guard=("Member",)):
    return event(path, guard).stamped(instance, epoch, seq)


def missed(sequences, *events):
    return [sequences.missed_before(e) for e in events]


def test_sequences_in_order_have_no_gap():
    assert missed(Sequences(), *(stamped(n) for n in (1, 2, 3, 4))) == [0, 0, 0, 0]


def test_sequences_first_event_of_a_run_is_the_baseline():
    """This process may have started after the publisher: the first number seen is no gap."""
    assert missed(Sequences(), stamped(57), stamped(58)) == [0, 0]


def test_sequences_a_jump_counts_the_missing_events():
    assert missed(Sequences(), stamped(1), stamped(2), stamped(5), stamped(6), stamped(8)) == [
        0, 0, 2, 0, 1]


def test_sequences_publisher_restart_is_neither_a_gap_nor_a_replay():
    sequences = Sequences()
    assert missed(sequences, stamped(40), stamped(41)) == [0, 0]
    # alpha restarted: a new epoch counting from 1 again
    assert missed(sequences, stamped(1, epoch="run-2"), stamped(2, epoch="run-2")) == [0, 0]
    assert missed(sequences, stamped(4, epoch="run-2")) == [1]
    # a late event of the old run is still judged against the old run
    assert missed(sequences, stamped(42)) == [0]


def test_sequences_duplicates_and_late_events_are_refused():
    sequences = Sequences()
    assert missed(sequences, stamped(1), stamped(2), stamped(2), stamped(1)) == [0, 0, None, None]
    assert missed(sequences, stamped(5), stamped(4), stamped(3), stamped(6)) == [2, None, None, 0]


def test_sequences_are_per_instance():
    sequences = Sequences()
    assert missed(sequences, stamped(1, "alpha"), stamped(1, "beta"), stamped(2, "alpha"),
                  stamped(3, "beta")) == [0, 0, 0, 1]


def test_sequences_same_name_different_runs_do_not_mix():
    """Two instances left with the default instance-name (the host name) on one host."""
    sequences = Sequences()
    assert missed(sequences, stamped(10, "host", "a"), stamped(3, "host", "b"),
                  stamped(11, "host", "a"), stamped(4, "host", "b")) == [0, 0, 0, 0]


def test_sequences_ignore_unstamped_events():
    sequences = Sequences()
    assert missed(sequences, event(), event(), event()) == [0, 0, 0]
    assert sequences.last == {}


def test_sequences_remember_a_bounded_number_of_runs():
    sequences = Sequences(limit=3)
    for run in ("r1", "r2", "r3"):
        sequences.missed_before(stamped(1, epoch=run))
    sequences.missed_before(stamped(2, epoch="r1"))  # r1 heard from again: r2 is now the oldest
    sequences.missed_before(stamped(1, epoch="r4"))
    assert list(sequences.last) == [("alpha", "r3"), ("alpha", "r1"), ("alpha", "r4")]
    assert missed(sequences, stamped(5, epoch="r2")) == [0]  # forgotten: a new baseline


def test_hub_announces_a_gap_to_everybody_once_before_the_event():
    hub = Hub()
    member, stranger, elsewhere = Recorder(), Recorder(tokens=("user:bob",)), Recorder(
        paths=("/Other",))
    for r in (member, stranger, elsewhere):
        hub.add(r.subscriber)
    hub.deliver(stamped(1))
    assert hub.deliver(stamped(4)) == 1
    gap = {"type": "gap", "instance": "alpha", "missed": 2}
    assert [json.loads(p) for p in stranger.sent] == [gap]  # regardless of guard
    assert [json.loads(p) for p in elsewhere.sent] == [gap]  # regardless of paths
    assert [json.loads(p)["type"] for p in member.sent] == ["created", "gap", "created"]
    assert json.loads(member.sent[1]) == gap
    hub.deliver(stamped(5))
    assert len(stranger.sent) == 1  # once per gap
    assert hub.gaps == 1


def test_hub_gap_is_announced_even_when_nobody_wants_the_event():
    hub = Hub()
    r = Recorder(paths=("/Other",))
    hub.add(r.subscriber)
    hub.deliver(stamped(1))
    assert hub.deliver(stamped(3, guard=("Manager",))) == 0
    assert [json.loads(p) for p in r.sent] == [{"type": "gap", "instance": "alpha", "missed": 1}]


def test_hub_drops_duplicates_and_never_sends_the_stamp_or_guard():
    hub = Hub()
    r = Recorder()
    hub.add(r.subscriber)
    assert hub.deliver(stamped(1, guard=("Member", "Secret-Token"))) == 1
    assert hub.deliver(stamped(1, guard=("Member", "Secret-Token"))) == 0
    assert hub.dropped == 1
    assert len(r.sent) == 1
    data = json.loads(r.sent[0])
    assert not {"guard", "seq", "epoch", "instance"} & set(data)
    assert b"Secret-Token" not in r.sent[0] and b"run-1" not in r.sent[0]


# Heartbeats: a run's last number, so a loss no event follows still becomes a gap

def beat(seq, instance="alpha", epoch="run-1", final=False):
    return Heartbeat(instance, epoch, seq, final)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def gaps(recorder):
    return [json.loads(p) for p in recorder.sent if json.loads(p)["type"] == "gap"]


def test_heartbeat_reports_events_lost_when_none_follows_them_once():
    hub = Hub()
    r = Recorder()
    hub.add(r.subscriber)
    for n in (1, 2, 3):
        hub.deliver(stamped(n))
    # events 4 and 5 were lost (the broker was down), then alpha went quiet: only heartbeats
    assert hub.deliver(beat(5)) == 0
    assert hub.deliver(beat(5)) == 0
    assert gaps(r) == [{"type": "gap", "instance": "alpha", "missed": 2}]
    assert (hub.gaps, hub.heartbeat_gaps, hub.heartbeats) == (1, 1, 2)
    hub.deliver(stamped(6))  # the run's next event: no second gap for the same loss
    assert hub.gaps == 1
    assert [json.loads(p)["type"] for p in r.sent] == ["created"] * 3 + ["gap", "created"]


def test_heartbeat_is_never_sent_to_browsers():
    hub = Hub()
    r = Recorder(tokens=("Anonymous", "Member", "Manager"), paths=("/",))
    hub.add(r.subscriber)
    for message in (beat(0), beat(0), stamped(1), beat(1), beat(1, final=True)):
        hub.deliver(message)
    assert [json.loads(p)["type"] for p in r.sent] == ["created"]
    assert hub.heartbeats == 4 and hub.delivered == 1


def test_heartbeat_in_step_with_the_events_is_no_gap():
    hub = Hub()
    r = Recorder()
    hub.add(r.subscriber)
    hub.deliver(beat(0))  # the run's start: a baseline before its first event
    for n in (1, 2):
        hub.deliver(stamped(n))
        hub.deliver(beat(n))
    assert gaps(r) == [] and hub.gaps == 0


def test_first_heartbeat_of_a_run_is_the_baseline():
    """This process may have started after the run's events: the first number is no gap."""
    hub = Hub()
    hub.deliver(beat(40))
    hub.deliver(stamped(41))
    assert hub.gaps == 0
    hub.deliver(beat(44))
    assert hub.gaps == 1 and hub.heartbeat_gaps == 1


def test_run_whose_first_events_were_lost_is_reported_after_its_start_heartbeat():
    hub = Hub()
    hub.deliver(beat(0))
    hub.deliver(beat(3))
    assert (hub.gaps, hub.heartbeat_gaps) == (1, 1)


def test_heartbeat_after_a_gap_found_by_an_event_is_not_a_second_gap():
    hub = Hub()
    hub.deliver(stamped(1))
    hub.deliver(stamped(4))
    hub.deliver(beat(4))
    assert (hub.gaps, hub.heartbeat_gaps) == (1, 0)


def test_late_heartbeat_is_ignored():
    sequences = Sequences()
    sequences.missed_before(stamped(5))
    assert sequences.missed_by(beat(3)) == 0
    assert sequences.last[("alpha", "run-1")][0] == 5


def test_heartbeats_are_per_run():
    hub = Hub()
    hub.deliver(stamped(3, epoch="old"))
    hub.deliver(beat(1, epoch="new"))  # alpha restarted: a new run, its own baseline
    hub.deliver(beat(3, epoch="old"))
    hub.deliver(beat(1, epoch="new"))
    assert hub.gaps == 0
    hub.deliver(beat(2, instance="beta"))
    hub.deliver(beat(9, instance="beta"))
    assert hub.gaps == 1


def test_final_heartbeat_reports_the_loss_and_forgets_the_run():
    hub = Hub()
    r = Recorder()
    hub.add(r.subscriber)
    hub.deliver(stamped(1))
    hub.deliver(beat(4, final=True))  # alpha stopped cleanly after losing 2, 3, 4
    assert gaps(r) == [{"type": "gap", "instance": "alpha", "missed": 3}]
    assert hub.sequences.last == {}


def test_gap_found_by_a_heartbeat_looks_principals_up_again():
    """Lost messages may have been principal changes: cached lookups go, as for any gap."""
    hub = Hub()
    forgotten = []
    hub.principal_listeners.append(lambda *args: forgotten.append(args))
    hub.deliver(stamped(1))
    hub.deliver(beat(2))
    assert forgotten == [(None, frozenset(), None)]


def test_heartbeat_with_a_jump_no_publisher_makes_is_dropped():
    clock = Clock()
    hub = Hub()
    hub.sequences = Sequences(clock=clock)
    hub.deliver(stamped(1))
    hub.deliver(beat(2 + Sequences.MIN_JUMP))
    assert (hub.gaps, hub.jumps) == (0, 1)
    assert hub.sequences.last[("alpha", "run-1")][0] == 1  # a forged number moves nothing
    hub.deliver(stamped(2))
    assert (hub.gaps, hub.dropped) == (0, 0)


def test_run_unheard_while_others_are_heard_is_forgotten():
    clock = Clock()
    sequences = Sequences(clock=clock, forget_after=600, silence=120)
    sequences.missed_by(beat(7, instance="crashed"))
    for _ in range(11):  # 11 minutes of beta's heartbeats: the bus works, "crashed" says nothing
        clock.now += 60
        sequences.missed_by(beat(1, instance="beta"))
    assert list(sequences.last) == [("beta", "run-1")]


def test_an_outage_of_the_whole_bus_forgets_no_run():
    """Nothing heard at all (the broker down) does not count: the first heartbeat after a
    long outage still reports what the outage lost."""
    clock = Clock()
    sequences = Sequences(clock=clock, forget_after=600, silence=120)
    sequences.missed_by(beat(7))
    sequences.missed_by(beat(1, instance="beta"))
    clock.now += 3600  # an hour without the broker; alpha published 3 events into the void
    assert sequences.missed_by(beat(1, instance="beta")) == 0
    assert sequences.missed_by(beat(10)) == 3
    # and a run that died before the outage is forgotten ten minutes after the bus is back
    for _ in range(11):
        clock.now += 60
        sequences.missed_by(beat(10))
    assert ("beta", "run-1") not in sequences.last and ("alpha", "run-1") in sequences.last


def test_heartbeats_of_many_runs_keep_memory_bounded():
    sequences = Sequences(limit=100)
    for n in range(1000):
        sequences.missed_by(beat(5, instance=f"i{n}"))
    assert len(sequences.last) == 100
