"""Done task ids in the ZODB: what makes a redelivered task's second run a no-op.

A durable queue (nats) delivers a task at least once: an instance that dies after the task's
transaction committed but before its acknowledgement reached NATS leaves the task to be
delivered again. The task's transaction therefore also records its id, so commit of the task's
changes and "this id is done" are one atomic fact:

- before a run, ``DoneLedger.done`` reads the ledger (its own short ZODB connection): a recorded
  id is not run again, only acknowledged;
- in the run's transaction, just before commit (``IPubBeforeCommit``), ``record`` adds the id.
  Two runs of one id at once (a redelivery while the first still runs) both insert the same key
  into the same BTree bucket, so the later commit conflicts; Zope's retry of it then finds the id
  and aborts (``TaskAlreadyDone``) instead of committing the changes twice.

The ledger is ``root["txzserver.tasks.done"]``: an OOBTree of period -> OOTreeSet of task ids.
The period is the hour the task entered the stream (the same for every delivery of one task,
so every run of an id writes the same set). Periods older than the stream's max-age (after which
NATS itself drops a task, so none can come again) are deleted when a newer one is written: the
ledger holds at most max-age's worth of ids.
"""

import time

import transaction
from BTrees.OOBTree import OOBTree, OOTreeSet
from zope.component import provideHandler
from ZPublisher.interfaces import IPubBeforeCommit

from .task import TASK_KEY

LEDGER = "txzserver.tasks.done"
#: environ key of a run that must record its id: "PERIOD:KEEP" (two ints); set by the runner only
ONCE_KEY = "txzserver.task.once"
#: seconds per ledger period
PERIOD = 3600


class TaskAlreadyDone(RuntimeError):
    """Another run of this task id committed first: this run's changes are aborted."""


def period_of(timestamp):
    """The ledger period of a task that entered the stream at ``timestamp`` (seconds)."""
    return int(timestamp // PERIOD)


def kept_periods(max_age):
    """How many periods back a task can still be delivered: its max-age, plus the partial one."""
    return int(max_age // PERIOD) + 2


def once_value(period, keep):
    return f"{period}:{keep}"


def _parse(value):
    period, _, keep = value.partition(":")
    return int(period), int(keep)


def record(root, task_id, period, keep, now=None):
    """Add ``task_id`` to ``root``'s ledger in ``period``; drop periods older than ``keep``.
    Raises TaskAlreadyDone when the id is there already. In the task's transaction."""
    ledger = root.get(LEDGER)
    if ledger is None:
        ledger = root[LEDGER] = OOBTree()
    ids = ledger.get(period)
    if ids is None:
        ids = ledger[period] = OOTreeSet()
    if task_id in ids:
        raise TaskAlreadyDone(f"task {task_id} committed before: this run is not committed")
    ids.insert(task_id)
    oldest = period_of(time.time() if now is None else now) - keep
    if ledger.minKey() < oldest:
        for old in list(ledger.keys(max=oldest, excludemax=True)):
            del ledger[old]


def recorded(root, task_id, period):
    ledger = root.get(LEDGER)
    ids = ledger.get(period) if ledger is not None else None
    return ids is not None and task_id in ids


def on_before_commit(event):
    """IPubBeforeCommit: a durable task's run records its id in the transaction it commits."""
    request = event.request
    environ = getattr(request, "environ", None) or {}
    value, task_id = environ.get(ONCE_KEY), environ.get(TASK_KEY)
    if not value or not task_id:
        return
    parents = request.get("PARENTS") or ()
    jar = getattr(parents[-1], "_p_jar", None) if parents else None
    if jar is None:
        raise TaskAlreadyDone(f"task {task_id}: no ZODB connection to record it in")
    period, keep = _parse(value)
    record(jar.root(), task_id, period, keep)


class DoneLedger:
    """Reads the ledger from a short connection of ``db()`` (Zope's database). Worker thread."""

    def __init__(self, db):
        self.db = db

    def done(self, task_id, period):
        manager = transaction.TransactionManager()
        connection = self.db().open(transaction_manager=manager)
        try:
            return recorded(connection.root(), task_id, period)
        finally:
            manager.abort()
            connection.close()


def zope_db():
    import Zope2  # the started Zope's database: there only once Zope runs
    return Zope2.DB


_installed = []


def install():
    """Register ``on_before_commit`` (once): a durable queue needs it."""
    if not _installed:
        provideHandler(on_before_commit, (IPubBeforeCommit,))
        _installed.append(True)
