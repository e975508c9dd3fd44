"""txzserver.bus.message.Event: validation, the wire format between instances (guard
included, sorted) and the public form for browsers (no guard); the Heartbeat kind and from_wire."""

import json

import pytest

from txzserver.bus import EVENT_TYPES, Event, PrincipalChange
from txzserver.bus.message import Heartbeat, from_wire

FULL = dict(type="transition", path="/Plone/news/item", uid="0123abcd", url="https://x/news/item",
            title="Item \u00e9t\u00e9", portal_type="News Item", review_state="published",
            actor="jane", time="2026-11-26T14:26:45+00:00", message="Published",
            guard=frozenset({"user:jane", "Reviewer", "Anonymous"}))


def test_round_trip_keeps_every_field():
    event = Event(**FULL)
    assert Event.from_wire(event.to_wire()) == event


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_every_type_round_trips(type_):
    event = Event(type_, "/Plone", guard={"Member"})
    assert Event.from_wire(event.to_wire()) == event


def test_guard_is_sorted_on_the_wire_and_the_wire_is_compact():
    wire = Event(**FULL).to_wire()
    data = json.loads(wire)
    assert data["guard"] == ["Anonymous", "Reviewer", "user:jane"]
    assert b", " not in wire and b": " not in wire
    assert Event(**FULL).to_wire() == Event(**{**FULL, "guard": ["user:jane", "Anonymous",
                                                                 "Reviewer"]}).to_wire()


def test_guard_becomes_a_frozenset():
    event = Event("created", "/Plone", guard=["a", "b", "a"])
    assert event.guard == frozenset({"a", "b"})
    assert hash(event)  # frozen and hashable


def test_guard_must_not_be_a_string():
    """A string would become a set of its letters: a guard nobody matches."""
    with pytest.raises(TypeError, match="guard"):
        Event("created", "/Plone", guard="Member")


def test_public_has_no_guard_and_is_json():
    public = Event(**FULL).public()
    assert "guard" not in public
    assert public["title"] == "Item \u00e9t\u00e9"
    assert set(public) == set(FULL) - {"guard"}
    json.dumps(public)


def test_wire_is_bytes_of_one_json_object():
    wire = Event(**FULL).to_wire()
    assert isinstance(wire, bytes)
    assert json.loads(wire.decode("utf-8"))["title"] == "Item \u00e9t\u00e9"


@pytest.mark.parametrize("type_", ["deleted", "", "CREATED", None])
def test_unknown_type_is_rejected(type_):
    with pytest.raises(ValueError, match="unknown event type"):
        Event(type_, "/Plone")


@pytest.mark.parametrize("path", ["Plone/news", "", "news"])
def test_relative_path_is_rejected(path):
    with pytest.raises(ValueError, match="absolute"):
        Event("created", path)


@pytest.mark.parametrize("wire", [
    b"not json",
    b"\xff\xfe",
    b"[1, 2]",
    b'"created"',
    b"null",
    b'{"type": "created"}',
    b'{"type": "created", "path": "/x", "colour": "blue"}',
    b'{"type": "bogus", "path": "/x"}',
    b'{"type": "created", "path": "x"}',
    b'{"type": "created", "path": 5}',
    b'{"type": "created", "path": null}',
    b'{"type": "created", "path": "/x", "guard": 5}',
    b'{"type": "created", "path": "/x", "guard": "Member"}',
    b'{"type": ["created"], "path": "/x"}',
    b'{"type": "created", "path": "/x", "seq": "3"}',
    b'{"type": "created", "path": "/x", "seq": -1}',
    b'{"type": "created", "path": "/x", "seq": true}',
    b'{"type": "created", "path": "/x", "seq": 1.5}',
    b'{"type": "created", "path": "/x", "instance": 5}',
    b'{"type": "created", "path": "/x", "epoch": ["a"]}',
])
def test_malformed_wire_data_raises_value_or_type_error(wire):
    """ZmqBus.doRead skips what raises ValueError or TypeError; nothing else may escape."""
    with pytest.raises((ValueError, TypeError)):
        Event.from_wire(wire)


# The publisher's stamp: what lets a subscriber notice a lost message

def test_events_are_unstamped_until_a_publisher_stamps_them():
    event = Event(**FULL)
    assert (event.instance, event.epoch, event.seq) == ("", "", 0)
    stamped = event.stamped("alpha", "0f1e2d3c", 7)
    assert (stamped.instance, stamped.epoch, stamped.seq) == ("alpha", "0f1e2d3c", 7)
    assert stamped.guard == event.guard and stamped.title == event.title
    assert event.seq == 0  # frozen: stamping makes a new event


def test_stamp_travels_on_the_wire_but_never_to_browsers():
    stamped = Event(**FULL).stamped("alpha", "0f1e2d3c", 7)
    assert Event.from_wire(stamped.to_wire()) == stamped
    wire = json.loads(stamped.to_wire())
    assert (wire["instance"], wire["epoch"], wire["seq"]) == ("alpha", "0f1e2d3c", 7)
    assert stamped.public() == Event(**FULL).public()


def test_wire_without_a_stamp_is_still_read():
    """Messages of an instance that predates sequence numbers (a rolling upgrade)."""
    event = Event.from_wire(b'{"type": "created", "path": "/x"}')
    assert event.seq == 0


# Heartbeats: a publisher run's last number

def test_heartbeat_round_trips_through_from_wire():
    beat = Heartbeat("alpha", "0f1e2d3c", 42, final=True)
    assert json.loads(beat.to_wire()) == {"kind": "heartbeat", "instance": "alpha",
                                          "epoch": "0f1e2d3c", "seq": 42, "final": True}
    assert from_wire(beat.to_wire()) == beat
    assert from_wire(Heartbeat("alpha", "e").to_wire()) == Heartbeat("alpha", "e", 0, False)


def test_from_wire_still_reads_events_and_principal_changes():
    event = Event(**FULL).stamped("alpha", "e", 3)
    change = PrincipalChange(logged_out=("jane",), site="/Plone").stamped("alpha", "e", 4)
    assert from_wire(event.to_wire()) == event
    assert from_wire(change.to_wire()) == change


@pytest.mark.parametrize("wire", [
    b'{"kind": "heartbeat"}',
    b'{"kind": "heartbeat", "instance": "a"}',
    b'{"kind": "heartbeat", "instance": "", "epoch": "e", "seq": 1}',
    b'{"kind": "heartbeat", "instance": "a", "epoch": "", "seq": 1}',
    b'{"kind": "heartbeat", "instance": 5, "epoch": "e", "seq": 1}',
    b'{"kind": "heartbeat", "instance": "a", "epoch": "e", "seq": -1}',
    b'{"kind": "heartbeat", "instance": "a", "epoch": "e", "seq": true}',
    b'{"kind": "heartbeat", "instance": "a", "epoch": "e", "seq": "7"}',
    b'{"kind": "heartbeat", "instance": "a", "epoch": "e", "seq": 1, "final": 1}',
    b'{"kind": "heartbeat", "instance": "a", "epoch": "e", "seq": 1, "path": "/x"}',
    b'{"kind": "heartbeats", "instance": "a", "epoch": "e", "seq": 1}',
])
def test_malformed_heartbeat_raises_value_or_type_error(wire):
    with pytest.raises((ValueError, TypeError)):
        from_wire(wire)


def test_heartbeat_is_not_an_event():
    """Code that sends events to browsers cannot mistake one: it has no path, type or public()."""
    beat = Heartbeat("alpha", "e", 1)
    assert not hasattr(beat, "public") and not hasattr(beat, "path")
    assert Heartbeat.kind == "heartbeat"
