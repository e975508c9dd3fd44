"""``add()``: queue a task when the current transaction commits (nothing on abort).

As with the content events (``txzserver.plone.eventqueue``), the tasks of a transaction live
on the transaction object (thread-local, no locks) and a data manager joined to it forgets them
on abort and on a savepoint rollback. An after-commit hook hands them, in order, to the
``ITaskQueues`` utility the server registered; the hook's status says whether the commit
succeeded.
"""

import logging
import secrets

import transaction
from AccessControl import getSecurityManager
from Acquisition import aq_inner, aq_parent
from zope.component import queryUtility
from zope.globalrequest import getRequest

from .interfaces import ITaskQueues
from .task import Task

log = logging.getLogger("txzserver.tasks")

_KEY = object()  # Transaction.data() key; never persisted


class TaskQueueError(LookupError):
    """``add()`` named a queue this server does not have (or no server runs the queues)."""


class _Pending:
    def __init__(self):
        self.tasks = []


class _Savepoint:
    def __init__(self, pending):
        self.pending = pending
        self.length = len(pending.tasks)

    def rollback(self):
        del self.pending.tasks[self.length:]


class _TaskDataManager:
    """Joins the transaction only to forget its tasks on abort and to support savepoints."""

    def __init__(self, pending, manager):
        self.pending = pending
        self.transaction_manager = manager

    def abort(self, txn):
        self.pending.tasks = []

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        pass

    def tpc_finish(self, txn):
        pass

    def tpc_abort(self, txn):
        self.pending.tasks = []

    def sortKey(self):
        return "~txzserver.tasks"

    def savepoint(self):
        return _Savepoint(self.pending)


def _pending():
    manager = transaction.manager
    txn = manager.get()
    try:
        return txn.data(_KEY)
    except KeyError:
        pass
    state = _Pending()
    txn.set_data(_KEY, state)
    try:
        txn.join(_TaskDataManager(state, manager))
    except ValueError:
        log.debug("task queued during commit: no savepoint tracking for it")
    txn.addAfterCommitHook(_after_commit, args=(state,))
    return state


def _current_user():
    """(userid, physical path of its user folder) of the current user; ("", "") for Anonymous."""
    user = getSecurityManager().getUser()
    userid = user.getId() if user is not None else None
    if not userid:
        return "", ""
    folder = aq_parent(aq_inner(user))
    path = "/".join(folder.getPhysicalPath()) if hasattr(folder, "getPhysicalPath") else ""
    return userid, path


def _server_url():
    request = getRequest()
    try:
        return request["SERVER_URL"] if request is not None else "http://localhost"
    except (KeyError, TypeError):
        return "http://localhost"


def add(path, method="GET", params=None, payload=None, queue="default", headers=None):
    """Queue a request of ``path`` (e.g. "/Plone/folder/@@my-task") to run after commit.

    Like collective.taskqueue's ``taskqueue.add``: the request runs later in the server's
    publisher threads, as the current user (or the queue's ``task-user``), marked so that
    ``is_task(request)`` is true. ``params`` (dict or pairs) become the query string (GET) or
    the form (POST); ``payload`` (bytes or str) is the request body instead. Returns the task
    id. Raises TaskQueueError when this process serves no queue named ``queue``.
    """
    queues = queryUtility(ITaskQueues)
    if queues is None:
        raise TaskQueueError("no task queues here: tasks run under `txzserver serve`")
    if queue not in queues.names():
        raise TaskQueueError(f"no task queue {queue!r}; configured: {', '.join(queues.names()) or 'none'}")
    if isinstance(params, dict):
        params = params.items()
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    userid, folder = (queues.task_user(queue), "") if queues.task_user(queue) else _current_user()
    task = Task(id=secrets.token_hex(8), queue=queue, path=path, method=method,
                params=tuple(params or ()), payload=payload,
                headers=tuple((headers or {}).items()), userid=userid, user_folder=folder,
                server_url=_server_url())
    _pending().tasks.append(task)
    return task.id


def _after_commit(status, state):
    tasks, state.tasks = state.tasks, []
    if not status or not tasks:
        return
    queues = queryUtility(ITaskQueues)
    if queues is None:
        log.error("no task queues registered: %d committed task(s) dropped", len(tasks))
        return
    try:
        queues.submit(tasks)
    except Exception:
        # The transaction is committed; raising here would only hide the error in a hook log.
        log.exception("queueing %d committed task(s) failed", len(tasks))
