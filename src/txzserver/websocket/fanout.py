"""Deliver events to the connections allowed to see them (reactor thread only).

Guards are matched in memory: a connection holds its user's tokens (computed once at the
handshake), an event carries the tokens allowed to see it; delivery is a set intersection.
Events that crossed the bus carry their publisher's sequence numbers: a jump means some were
lost on the way, and every connection is told so before the next event (``Sequences``).
"""

import json
from collections import OrderedDict

from twisted.logger import Logger

log = Logger()


def normalize_path(path):
    """"/Plone/news/" -> "/Plone/news"; the root is "/"; ValueError for non-absolute paths."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("path must be an absolute path like /Plone/news")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError("path must not contain . or .. segments")
    trimmed = path.rstrip("/")
    return trimmed or "/"


def path_matches(prefix, path):
    """True if ``path`` is ``prefix`` or below it, on whole segments."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


class Subscriber:
    """What the hub needs of a connection: tokens, subscribed prefixes and a send method."""

    def __init__(self, tokens, paths, send):
        self.tokens = frozenset(tokens)
        self.paths = set(paths)
        self.send = send

    def wants(self, event):
        return bool(self.tokens & event.guard) and any(path_matches(p, event.path) for p in self.paths)


class Sequences:
    """The last sequence number seen from each publisher run (reactor thread only).

    A run is (instance, epoch): one start of one instance's bus publisher, numbering its
    events 1, 2, 3... The first event seen from a run is the baseline, not a gap: this
    process may have started after the run did, and a restarted instance is a new run
    counting from 1 again (not a replay). After that, a jump means events were lost (broker
    down, a high-water mark, a full publisher), and a number not above the last one is a
    duplicate or an event already counted as missed. Unstamped events (seq 0, in-process
    delivery) are not tracked. The ``limit`` most recently heard runs are remembered.
    """

    def __init__(self, limit=1024):
        self.limit = limit
        self.last = OrderedDict()

    def missed_before(self, event):
        """How many events of ``event``'s run were lost just before it (0 when none), or
        None when ``event`` is a duplicate or comes late: drop it."""
        if not event.seq:
            return 0
        run = (event.instance, event.epoch)
        last = self.last.get(run)
        if last is not None and event.seq <= last:
            return None
        self.last[run] = event.seq
        self.last.move_to_end(run)
        if len(self.last) > self.limit:
            self.last.popitem(last=False)
        return 0 if last is None else event.seq - last - 1


class Hub:
    """The connections of this process and the delivery of events to them."""

    def __init__(self):
        self.subscribers = set()
        self.sequences = Sequences()
        self.delivered = 0
        self.gaps = 0
        self.dropped = 0  # duplicate or late events

    def add(self, subscriber):
        self.subscribers.add(subscriber)

    def remove(self, subscriber):
        self.subscribers.discard(subscriber)

    def __len__(self):
        return len(self.subscribers)

    def deliver(self, event):
        """Send ``event`` to every subscriber that may see it; return how many got it.

        When events of its publisher were lost just before it, every subscriber is first
        told how many (``announce_gap``); a duplicate or late event is dropped.
        """
        missed = self.sequences.missed_before(event)
        if missed is None:
            self.dropped += 1
            log.debug("dropped event {seq} of {instance}: already past it", seq=event.seq,
                      instance=event.instance)
            return 0
        if missed:
            self.announce_gap(event.instance, missed)
        payload = None
        count = 0
        for subscriber in list(self.subscribers):
            if subscriber.wants(event):
                if payload is None:
                    payload = json.dumps(event.public()).encode("utf-8")
                subscriber.send(payload)
                count += 1
        self.delivered += count
        return count

    def announce_gap(self, instance, missed):
        """Tell every subscriber, whatever its paths and tokens, that ``missed`` events of
        ``instance`` were lost: the message names no content, only that a reload is due."""
        self.gaps += 1
        log.info("lost {missed} event(s) from instance {instance} on the bus", missed=missed,
                 instance=instance)
        payload = json.dumps({"type": "gap", "instance": instance, "missed": missed}).encode("utf-8")
        for subscriber in list(self.subscribers):
            subscriber.send(payload)
