"""Work a transaction hands over only once it has committed: content events, tasks.

Subscribers and views run in the middle of a transaction that may still abort (conflict error,
validation failure, a later exception): acting right away would announce content that never
existed, or run a task for it. So what they queue belongs to the current transaction and is
handed over once, in order, by an after-commit hook, and only when the commit succeeded.

Thread safety comes from ownership, not locks: the state lives on the transaction object itself
(``Transaction.set_data``), and Zope's transactions are thread-local. A small data manager is
joined to the transaction so that an abort, a failed commit or a rolled-back savepoint
(plone.api's move/rename take savepoints) forgets what was queued after it.

A leaf module (it imports nothing from txzserver): used by ``plone.eventqueue`` and
``tasks.enqueue``.
"""

import logging

import transaction

log = logging.getLogger("txzserver")


class Pending:
    """What one transaction has queued of one kind, in order. Subclasses may keep more state
    (override ``checkpoint``/``restore``/``clear``)."""

    def __init__(self):
        self.items = []

    def append(self, item):
        self.items.append(item)

    def take(self):
        """The queued items; the queue is empty afterwards."""
        items = self.items
        self.clear()
        return items

    def clear(self):
        self.items = []

    def checkpoint(self):
        return list(self.items)

    def restore(self, checkpoint):
        self.items = list(checkpoint)


class AfterCommitQueue:
    """One kind of after-commit work: ``deliver(items)`` gets what a transaction queued once it
    committed; ``pending()`` is the current transaction's ``factory()`` state, hooked on first
    use. ``name`` sorts the data manager and names the queue in log lines."""

    def __init__(self, name, deliver, factory=Pending):
        self.name = name
        self.deliver = deliver
        self.factory = factory
        self._key = object()  # Transaction.data() key; identity-based, never persisted

    def pending(self, txn=None):
        manager = transaction.manager
        if txn is None:
            txn = manager.get()
        try:
            return txn.data(self._key)
        except KeyError:
            pass
        state = self.factory()
        txn.set_data(self._key, state)
        try:
            txn.join(_ForgetOnAbort(state, manager, self.name))
        except ValueError:
            # Queued from a before-commit hook (the transaction is already committing): joining
            # is no longer allowed, and not needed: the after-commit hook below still runs.
            log.debug("%s: queued during commit, no savepoint tracking for it", self.name)
        txn.addAfterCommitHook(self._after_commit, args=(state,))
        return state

    def _after_commit(self, status, state):
        items = state.take()
        if not status or not items:
            return
        try:
            self.deliver(items)
        except Exception:
            # The transaction is committed; raising here would only hide the error in a hook log.
            log.exception("%s: handing over %d committed item(s) failed", self.name, len(items))


class _Savepoint:
    def __init__(self, state):
        self.state = state
        self.checkpoint = state.checkpoint()

    def rollback(self):
        self.state.restore(self.checkpoint)


class _ForgetOnAbort:
    """Joins the transaction only to forget its queue on abort and to support savepoints.

    Handing over happens in the after-commit hook, when every other resource (the ZODB) has
    finished: the hook's ``status`` says whether the commit really succeeded.
    """

    def __init__(self, state, manager, name):
        self.state = state
        self.transaction_manager = manager
        self.name = name

    def abort(self, txn):
        self.state.clear()

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        pass

    def tpc_finish(self, txn):
        pass

    def tpc_abort(self, txn):
        self.state.clear()

    def sortKey(self):
        return f"~{self.name}"

    def savepoint(self):
        return _Savepoint(self.state)
