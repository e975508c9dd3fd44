"""The bus messages: ``Event`` (what browsers receive, plus the guard that decides who receives
it) and ``PrincipalChange`` (whose guard tokens changed: every instance updates its connections and
drops its cached principal lookups), each with the publisher's stamp (instance, epoch, seq) that
lets every subscriber notice lost messages; and ``Heartbeat``, a run's last number, sent every
few seconds and when it stops, so losses are noticed even when no message follows them.
``from_wire`` reads any of them.
"""

from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar
from urllib.parse import urlsplit

from . import wire

EVENT_TYPES = ("created", "modified", "removed", "transition", "notification")
_NOT_PUBLIC = ("guard", "actor_guard", "instance", "epoch", "seq")
_TEXT = ("type", "path", "uid", "url", "title", "portal_type", "review_state", "actor", "time",
         "message", "instance", "epoch")


def _strings(value, what):
    """``value`` as a tuple of strings; TypeError for anything else (a string included)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"{what} must be a list of strings, not {value!r:.80}")
    if not all(isinstance(item, str) for item in value):
        raise TypeError(f"{what} must hold strings only")
    return tuple(value)


class UnsafeURL(ValueError):
    """An event whose ``url`` is not an http(s) URL: a browser would follow (or run) it."""


def check_url(url):
    """``url`` if it is empty or an absolute http(s) URL with a host, else UnsafeURL.

    Browsers build links from the event's path, not from this; but the url still reaches
    scripts (``txzserver listen``, other clients), and a ``javascript:`` or ``data:`` url only
    arrives when something other than Plone published the event.
    """
    if not isinstance(url, str):
        raise UnsafeURL(f"event url must be a string, not {url!r}")
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    # urlsplit strips what browsers strip (leading blanks, tabs and newlines): compare the whole
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc \
            or not url.lower().startswith(parts.scheme.lower() + "://"):
        raise UnsafeURL(f"event url must be an http(s) URL, not {url[:80]!r}")
    return url


@dataclass(frozen=True)
class Event:
    """One content event. ``guard`` holds allowedRolesAndUsers-style tokens ("Reviewer",
    "user:jane", "Anonymous"); a connection receives the event when its user's tokens
    intersect the guard. The guard never leaves the server (see ``public``).

    ``actor_guard``: the tokens that may also see ``actor`` (who made the change), as Plone's
    byline shows its author: members ("Authenticated"), and everyone ("Anonymous") only when
    the site allows anonymous users to view "about" information. Connections without one of
    them get the event with ``actor`` "" (``public(with_actor=False)``); empty: nobody sees it.

    ``instance``, ``epoch`` and ``seq`` are stamped by the bus publisher when the event is
    sent (see ``stamped``): the publishing instance's name, an id of this run of its publisher
    (so a restarted instance, counting from 1 again, is neither a gap nor a replay) and the
    number of the event in that run, 1, 2, 3... ``seq`` 0 means unstamped (in-process
    delivery, which cannot lose events). The stamp is bus bookkeeping: not sent to browsers.
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
    actor_guard: frozenset = field(default_factory=frozenset)
    instance: str = ""
    epoch: str = ""
    seq: int = 0

    def __post_init__(self):
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r:.80}")
        for name in _TEXT:
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"event {name} must be a string, not {getattr(self, name)!r:.80}")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ValueError(f"event path must be absolute, not {self.path!r}")
        check_url(self.url)
        object.__setattr__(self, "guard", frozenset(_strings(self.guard, "event guard")))
        object.__setattr__(self, "actor_guard",
                           frozenset(_strings(self.actor_guard, "event actor_guard")))
        if type(self.seq) is not int or self.seq < 0:  # bool is an int: refuse it too
            raise ValueError(f"event seq must be a non-negative integer, not {self.seq!r}")

    def stamped(self, instance, epoch, seq):
        """This event as sent by publisher run ``epoch`` of ``instance``, number ``seq``."""
        return replace(self, instance=instance, epoch=epoch, seq=seq)

    def public(self, with_actor=True):
        """The JSON-able dict sent to browsers (no guards, no bus stamp); ``actor`` "" unless
        ``with_actor`` (the receiver holds one of ``actor_guard``)."""
        data = asdict(self)
        for private in _NOT_PUBLIC:
            del data[private]
        if not with_actor:
            data["actor"] = ""
        return data

    def shows_actor(self, tokens):
        """True if a connection holding ``tokens`` may see who made the change."""
        return bool(self.actor) and not self.actor_guard.isdisjoint(tokens)

    def to_wire(self) -> bytes:
        """Bytes for the internal bus (guard included)."""
        data = asdict(self)
        data["guard"] = sorted(self.guard)
        data["actor_guard"] = sorted(self.actor_guard)
        return wire.encode(data)

    @classmethod
    def from_wire(cls, data: bytes) -> "Event":
        fields = wire.decode(data, "event")
        fields.pop("kind", None)
        return cls(**wire.known(cls, fields))


@dataclass(frozen=True)
class PrincipalChange:
    """Users whose guard tokens changed in a committed transaction, for every instance.

    ``users``: {user id: its tokens now} (a role or group membership changed); ``removed``: ids
    of users or groups that no longer exist (connections of such a user, or holding such a
    group's token, are closed: nobody can compute their tokens any more); ``logged_out``: user
    ids logged out, given a new password, or whose tokens are unknown: their connections are
    closed (4001: the client reconnects and authenticates anew) and their cached lookups go.
    Never sent to browsers; stamped and numbered like events, in the same sequence
    (``Event.stamped``).

    ``site``: the path of the Plone site whose user folder changed ("/Plone"); the tokens
    are that site's, and the change applies to connections of that site only (one user id
    may name different people in two sites). "" (a change in the Zope root's user folder,
    whose users log in to every site): ``removed`` and ``logged_out`` apply in every site,
    ``users`` nowhere (no site's tokens are known: the cached lookups are dropped).
    """

    kind: ClassVar[str] = "principals"
    users: dict = field(default_factory=dict)
    removed: tuple = ()
    logged_out: tuple = ()
    site: str = ""
    instance: str = ""
    epoch: str = ""
    seq: int = 0

    def __post_init__(self):
        if not isinstance(self.users, dict) or not all(isinstance(k, str) for k in self.users):
            raise TypeError("message users must map user ids to tokens")
        users = {k: frozenset(_strings(v, "a user's tokens")) for k, v in self.users.items()}
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "removed", _strings(self.removed, "message removed"))
        object.__setattr__(self, "logged_out", _strings(self.logged_out, "message logged_out"))
        if not isinstance(self.instance, str) or not isinstance(self.epoch, str):
            raise TypeError("message instance and epoch must be strings")
        if not isinstance(self.site, str) or (self.site and not self.site.startswith("/")):
            raise ValueError(f"message site must be a site path like /Plone, not {self.site!r}")
        if type(self.seq) is not int or self.seq < 0:
            raise ValueError(f"message seq must be a non-negative integer, not {self.seq!r}")

    def stamped(self, instance, epoch, seq):
        return replace(self, instance=instance, epoch=epoch, seq=seq)

    def to_wire(self) -> bytes:
        data = {"kind": self.kind, "users": {k: sorted(v) for k, v in self.users.items()},
                "removed": list(self.removed), "logged_out": list(self.logged_out),
                "site": self.site, "instance": self.instance, "epoch": self.epoch, "seq": self.seq}
        return wire.encode(data)


#: Seconds between two heartbeats of a publisher run (``<event-bus> heartbeat-interval``): a
#: loss no event follows is reported within about this long after the bus is back.
DEFAULT_HEARTBEAT_INTERVAL = 5.0
#: The longest heartbeat interval allowed: hubs forget a run unheard for ten times this
#: (``websocket.fanout.Sequences.FORGET_AFTER``).
MAX_HEARTBEAT_INTERVAL = 60.0


@dataclass(frozen=True)
class Heartbeat:
    """A publisher run is alive and has numbered ``seq`` messages so far (0: none yet); sent
    every few seconds and, with ``final``, when the run stops cleanly.

    A subscriber that saw fewer of the run's messages lost the difference, even when the run
    sends nothing more (it went quiet, was scaled down or stopped): without a heartbeat such a
    loss would only show when the run's next message arrives. It travels the publisher's own
    socket, after the messages it counts (one ordered pipe), so it never reports as lost a
    message still on its way. Bus bookkeeping only: never sent to browsers.
    """

    kind: ClassVar[str] = "heartbeat"
    instance: str
    epoch: str
    seq: int = 0
    final: bool = False

    def __post_init__(self):
        if not isinstance(self.instance, str) or not isinstance(self.epoch, str):
            raise TypeError("heartbeat instance and epoch must be strings")
        if not self.instance or not self.epoch:
            raise ValueError("a heartbeat names its instance and epoch")
        if type(self.seq) is not int or self.seq < 0:
            raise ValueError(f"heartbeat seq must be a non-negative integer, not {self.seq!r}")
        if type(self.final) is not bool:
            raise TypeError(f"heartbeat final must be true or false, not {self.final!r:.80}")

    def to_wire(self) -> bytes:
        data = {"kind": self.kind, "instance": self.instance, "epoch": self.epoch,
                "seq": self.seq, "final": self.final}
        return wire.encode(data)


def from_wire(data: bytes):
    """An Event, a PrincipalChange or a Heartbeat from its bytes on the bus; ValueError or
    TypeError if bad."""
    fields = wire.decode(data, "message")
    kind = fields.pop("kind", "event")
    for message in (PrincipalChange, Heartbeat):
        if kind == message.kind:
            return message(**wire.known(message, fields))
    if kind != "event":
        raise ValueError(f"unknown message kind {kind!r:.80}")
    return Event(**wire.known(Event, fields))
