"""txzserver.websocket.fanout: path normalisation and matching on whole segments, who wants
an event (guard tokens and subscribed paths), and the hub's delivery."""

import json

import pytest

from txzserver.bus import Event
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


# Sequence numbers: noticing lost events (issue 11)

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
