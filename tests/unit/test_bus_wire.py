"""txzserver.bus.wire: the one JSON codec of the bus's messages and the task queue's tasks;
both sides read and refuse the same way (no sockets)."""

import json

import pytest

from txzserver.bus import wire
from txzserver.bus.message import Event, Heartbeat, PrincipalChange, from_wire
from txzserver.tasks import Task


def test_encode_is_one_compact_json_object_in_ascii():
    assert wire.encode({"a": [1, "é"], "b": None}) == b'{"a":[1,"\\u00e9"],"b":null}'
    assert json.loads(wire.encode({"a": "é"})) == {"a": "é"}


@pytest.mark.parametrize("data, error", [
    (b"[1, 2]", ValueError), (b'"text"', ValueError), (b"null", ValueError),
    (b"{not json", ValueError), (b"\xff\xfe", ValueError),
])
def test_decode_refuses_what_is_not_one_json_object(data, error):
    with pytest.raises(error):
        wire.decode(data, "a thing")


def test_decode_names_what_it_read_in_the_error():
    with pytest.raises(ValueError, match="^a task on the wire must be a JSON object$"):
        wire.decode(b"[]", "a task")


def test_known_names_the_fields_of_another_schema():
    assert wire.known(Heartbeat, {"instance": "a", "epoch": "e"}) == {"instance": "a", "epoch": "e"}
    with pytest.raises(TypeError, match="unknown task field[(]s[)] extra, more"):
        wire.known(Task, {"id": "1", "more": 1, "extra": 2}, "task ")


def test_bus_messages_and_tasks_are_written_by_the_same_codec():
    task = Task("t1", "default", "/Plone/@@x", payload=b"\x00")
    for thing in (Event("created", "/Plone/a", guard={"Member"}), task,
                  PrincipalChange(users={"jane": {"Member"}}), Heartbeat("web", "e1", 3)):
        data = thing.to_wire()
        assert data == wire.encode(json.loads(data))  # compact, UTF-8: the codec's own bytes
    assert Task.from_wire(task.to_wire()) == task


@pytest.mark.parametrize("data", [b"[]", b"{bad", b"\xff", b'{"kind": "heartbeat", "x": 1}'])
def test_bus_and_task_readers_refuse_alike(data):
    with pytest.raises((ValueError, TypeError)):
        from_wire(data)
    with pytest.raises((ValueError, TypeError)):
        Task.from_wire(data)


def test_unknown_fields_are_a_type_error_on_both_sides():
    with pytest.raises(TypeError, match="unknown field[(]s[)] colour"):
        from_wire(b'{"type": "created", "path": "/a", "colour": "red"}')
    with pytest.raises(TypeError, match="unknown task field[(]s[)] colour"):
        Task.from_wire(b'{"id": "1", "queue": "q", "path": "/a", "colour": "red"}')
