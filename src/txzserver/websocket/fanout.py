"""Deliver events to the connections allowed to see them (reactor thread only).

Guards are matched in memory: a connection holds its user's tokens (computed once at the
handshake), an event carries the tokens allowed to see it; delivery is a set intersection.
"""

import json


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


class Hub:
    """The connections of this process and the delivery of events to them."""

    def __init__(self):
        self.subscribers = set()
        self.delivered = 0

    def add(self, subscriber):
        self.subscribers.add(subscriber)

    def remove(self, subscriber):
        self.subscribers.discard(subscriber)

    def __len__(self):
        return len(self.subscribers)

    def deliver(self, event):
        """Send ``event`` to every subscriber that may see it; return how many got it."""
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
