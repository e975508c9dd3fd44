"""``add()``: queue a task when the current transaction commits (nothing on abort).

As with the content events, the tasks of a transaction are queued on it
(``txzserver.aftercommit``: forgotten on abort and on a savepoint rollback) and handed, in
order, to the ``ITaskQueues`` utility the server registered once the commit succeeded.
"""

import logging
import secrets

from AccessControl import getSecurityManager
from Acquisition import aq_inner, aq_parent
from zope.component import queryUtility
from zope.globalrequest import getRequest

from ..aftercommit import AfterCommitQueue
from .interfaces import ITaskQueues
from .task import Task

log = logging.getLogger("txzserver.tasks")

class TaskQueueError(LookupError):
    """``add()`` named a queue this server does not have (or no server runs the queues)."""


def _submit(tasks):
    queues = queryUtility(ITaskQueues)
    if queues is None:
        log.error("no task queues registered: %d committed task(s) dropped", len(tasks))
        return
    queues.submit(tasks)


TASKS = AfterCommitQueue("txzserver.tasks", _submit)


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
    TASKS.pending().append(task)
    return task.id

