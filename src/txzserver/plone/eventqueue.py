"""Per-transaction event queue: events become visible only after their transaction committed.

Subscribers run in the middle of a transaction that may still abort: the events they make
are queued on the transaction (``txzserver.aftercommit``, which also explains how aborts,
failed commits and savepoint rollbacks forget them) and handed to ``IEventPublisher.publish``
once, in order, after a successful commit. Their ``time`` is the commit's: set when the
transaction has committed, just before they are handed over (what a client sees as "when", and
what fan-out latency is measured from: tests/bench/fanout.py).
"""

import logging
from dataclasses import replace
from datetime import datetime, timezone

from zope.component import queryUtility

from txzserver.aftercommit import AfterCommitQueue, Pending
from txzserver.bus import IEventPublisher

logger = logging.getLogger("txzserver.plone")


class PendingEvents(Pending):
    """What one transaction has queued so far: events in order, plus snapshots.

    ``snapshots`` holds state that must be taken before a change but is only used after it
    (the guard of an object about to be removed, the guard before a workflow transition).
    """

    def __init__(self):
        super().__init__()
        self.snapshots = {}

    @property
    def events(self):
        return self.items

    def find(self, uid, types):
        """Index of the last queued event for ``uid`` with a type in ``types``, or None."""
        if not uid:
            return None
        for index in range(len(self.items) - 1, -1, -1):
            event = self.items[index]
            if event.uid == uid and event.type in types:
                return index
        return None

    def replace(self, index, event):
        self.items[index] = event

    def clear(self):
        super().clear()
        self.snapshots = {}

    def checkpoint(self):
        return list(self.items), dict(self.snapshots)

    def restore(self, checkpoint):
        items, snapshots = checkpoint
        self.items, self.snapshots = list(items), dict(snapshots)


def _publish(events):
    publisher = queryUtility(IEventPublisher)
    if publisher is None:
        logger.debug("no IEventPublisher registered: dropping %d event(s)", len(events))
        return
    publisher.publish(events)


def commit_time():
    """Now as ISO-8601 UTC with microseconds, e.g. 2025-01-31T12:00:00.123456Z."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _publish_committed(events):
    """After commit: the events, their ``time`` the commit's."""
    committed = commit_time()
    _publish([replace(event, time=committed) for event in events])


EVENTS = AfterCommitQueue("txzserver.plone.eventqueue", _publish_committed, PendingEvents)


def pending(txn=None):
    """The PendingEvents of the current transaction, created (and hooked) on first use."""
    return EVENTS.pending(txn)


def queue(event):
    """Queue ``event`` for publication after the current transaction commits."""
    pending().append(event)
