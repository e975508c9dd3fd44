"""The event message: what browsers receive, plus the guard that decides who receives it."""

import json
from dataclasses import asdict, dataclass, field

EVENT_TYPES = ("created", "modified", "removed", "transition", "notification")


@dataclass(frozen=True)
class Event:
    """One content event. ``guard`` holds allowedRolesAndUsers-style tokens ("Reviewer",
    "user:jane", "Anonymous"); a connection receives the event when its user's tokens
    intersect the guard. The guard never leaves the server (see ``public``).
    """

    type: str
    path: str
    uid: str = ""
    url: str = ""
    title: str = ""
    portal_type: str = ""
    review_state: str = ""
    actor: str = ""
    time: str = ""
    message: str = ""
    guard: frozenset = field(default_factory=frozenset)

    def __post_init__(self):
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ValueError(f"event path must be absolute, not {self.path!r}")
        if isinstance(self.guard, (str, bytes)):
            raise TypeError(f"event guard must be a collection of tokens, not {self.guard!r}")
        object.__setattr__(self, "guard", frozenset(self.guard))

    def public(self):
        """The JSON-able dict sent to browsers (no guard)."""
        data = asdict(self)
        del data["guard"]
        return data

    def to_wire(self) -> bytes:
        """Bytes for the internal bus (guard included)."""
        data = asdict(self)
        data["guard"] = sorted(self.guard)
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_wire(cls, data: bytes) -> "Event":
        fields = json.loads(data.decode("utf-8"))
        if not isinstance(fields, dict):
            raise ValueError("event on the wire must be a JSON object")
        return cls(**fields)
