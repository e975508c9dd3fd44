"""The JSON wire codec shared by the bus's messages (bus/message.py) and the task queue's tasks
(tasks/task.py): one compact UTF-8 JSON object per message, read back only into the dataclass
it names, every field known.

What arrives may come from anything that reached the broker or the stream, so reading refuses
what is not of the schema with ValueError or TypeError (a message other than one JSON object,
a field the dataclass does not have), never with another exception the reader would not catch.
"""

import json


def encode(fields) -> bytes:
    """``fields`` (a JSON-able dict) as the bytes of one message."""
    return json.dumps(fields, separators=(",", ":")).encode("utf-8")


def decode(data: bytes, what: str) -> dict:
    """The fields of one message; ValueError unless ``data`` is one JSON object (``what``
    names it in the error: "event", "a task")."""
    fields = json.loads(data.decode("utf-8"))
    if not isinstance(fields, dict):
        raise ValueError(f"{what} on the wire must be a JSON object")
    return fields


def known(cls, fields, what: str = "") -> dict:
    """``fields``, or TypeError naming those the dataclass ``cls`` does not have (a message of
    another schema, or of a newer version)."""
    unknown = set(fields) - set(cls.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown {what}field(s) {', '.join(sorted(unknown))[:200]}")
    return fields
