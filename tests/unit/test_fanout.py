"""txzserver.websocket.fanout: path normalisation and matching on whole segments, who wants
an event (guard tokens and subscribed paths), and the hub's delivery."""

import json

import pytest

from txzserver.bus import Event
from txzserver.websocket.fanout import Hub, Subscriber, normalize_path, path_matches


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
