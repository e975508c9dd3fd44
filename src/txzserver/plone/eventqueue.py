"""Per-transaction event queue: events become visible only after their transaction committed.

Subscribers run in the middle of a transaction that may still abort (conflict error, validation
failure, a later exception): publishing right away would tell browsers about content that never
existed. So every event is appended to a list that belongs to the current transaction and is
handed to ``IEventPublisher.publish`` once, in order, by an after-commit hook.

Thread safety comes from ownership, not locks: the list lives on the transaction object itself
(``Transaction.set_data``), and Zope's transactions are thread-local, so two publisher threads
never share a list. A small data manager is joined to the transaction so that an aborted
transaction, a failed commit, or a rolled-back savepoint (plone.api's move/rename take
savepoints) drops the events queued after it.
"""

import logging

import transaction
from zope.component import queryUtility

from txzserver.bus import IEventPublisher

logger = logging.getLogger("txzserver.plone")

_KEY = object()  # Transaction.data() key; identity-based, never persisted


class PendingEvents:
    """What one transaction has queued so far: events in order, plus snapshots.

    ``snapshots`` holds state that must be taken before a change but is only used after it
    (the guard of an object about to be removed, the guard before a workflow transition).
    """

    def __init__(self):
        self.events = []
        self.snapshots = {}

    def append(self, event):
        self.events.append(event)

    def find(self, uid, types):
        """Index of the last queued event for ``uid`` with a type in ``types``, or None."""
        if not uid:
            return None
        for index in range(len(self.events) - 1, -1, -1):
            event = self.events[index]
            if event.uid == uid and event.type in types:
                return index
        return None

    def replace(self, index, event):
        self.events[index] = event

    def clear(self):
        self.events = []
        self.snapshots = {}


class _Savepoint:
    """Restores the queue to its length and snapshots at savepoint time."""

    def __init__(self, pending):
        self.pending = pending
        self.events = list(pending.events)
        self.snapshots = dict(pending.snapshots)

    def rollback(self):
        self.pending.events = list(self.events)
        self.pending.snapshots = dict(self.snapshots)


class _QueueDataManager:
    """Joins the transaction only to forget the events on abort and to support savepoints.

    Publishing itself happens in an after-commit hook, when every other resource (the ZODB)
    has finished: the hook's ``status`` says whether the commit really succeeded.
    """

    def __init__(self, pending, manager):
        self.pending = pending
        self.transaction_manager = manager

    def abort(self, txn):
        self.pending.clear()

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        pass

    def tpc_finish(self, txn):
        pass

    def tpc_abort(self, txn):
        self.pending.clear()

    def sortKey(self):
        return "~txzserver.plone.eventqueue"

    def savepoint(self):
        return _Savepoint(self.pending)


def pending(txn=None):
    """The PendingEvents of the current transaction, created (and hooked) on first use."""
    manager = transaction.manager
    if txn is None:
        txn = manager.get()
    try:
        return txn.data(_KEY)
    except KeyError:
        pass
    state = PendingEvents()
    txn.set_data(_KEY, state)
    try:
        txn.join(_QueueDataManager(state, manager))
    except ValueError:
        # Queued from a before-commit hook (the transaction is already committing): joining is
        # no longer allowed, and not needed: the after-commit hook below still runs.
        logger.debug("queueing events during commit: no savepoint tracking for them")
    txn.addAfterCommitHook(_after_commit, args=(state,))
    return state


def queue(event):
    """Queue ``event`` for publication after the current transaction commits."""
    pending().append(event)


def _after_commit(status, state):
    """After-commit hook: publish everything at once when (and only when) the commit succeeded."""
    events, state.events = state.events, []
    state.snapshots = {}
    if not status or not events:
        return
    publisher = queryUtility(IEventPublisher)
    if publisher is None:
        logger.debug("no IEventPublisher registered: dropping %d event(s)", len(events))
        return
    try:
        publisher.publish(events)
    except Exception:
        # The transaction is committed; failing here would only hide the error in a hook log.
        logger.exception("publishing %d event(s) failed", len(events))
