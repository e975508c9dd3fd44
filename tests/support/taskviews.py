"""Views for the task queue tests, loaded by the test instances' etc/site.zcml (taskviews.zcml).

Each run a task makes is logged to the event log after its transaction committed, as
``TASKHIT <name> <instance> <user>``, so the tests count committed runs per task and per instance.
"""

import json
import logging
import os
import time

import transaction
from AccessControl import getSecurityManager
from BTrees.OOBTree import OOBTree
from Products.Five.browser import BrowserView
from ZODB.POSException import ConflictError
from zExceptions import Forbidden

from txzserver.tasks import add, is_task, task_attempt

log = logging.getLogger("tests.tasks")


def _path(obj):
    return "/".join(obj.getPhysicalPath())


class QueueTasks(BrowserView):
    """?count=N&target=VIEW[&queue=Q][&abort=1][&seconds=S]: queue N tasks of @@VIEW."""

    def __call__(self):
        form = self.request.form
        count, target = int(form.get("count", 1)), form.get("target", "test-task-hit")
        prefix = form.get("prefix", "t")
        for i in range(count):
            params = {"name": f"{prefix}{i}"}
            if form.get("seconds"):
                params["seconds"] = form["seconds"]
            add(f"{_path(self.context)}/@@{target}", params=params, queue=form.get("queue", "default"))
        if form.get("abort"):
            raise RuntimeError("abort after queueing")  # the transaction aborts: nothing runs
        return f"queued {count}"


def _hit(request, name):
    user = getSecurityManager().getUser().getId() or "Anonymous"
    instance = os.environ.get("TXZ_TEST_INSTANCE", "-")
    transaction.get().addAfterCommitHook(
        lambda ok: ok and log.info("TASKHIT %s %s %s attempt=%s", name, instance, user,
                                   task_attempt(request)))


class TaskHit(BrowserView):
    def __call__(self):
        if not is_task(self.request):
            raise Forbidden("tasks only")
        self.context._p_changed = False  # touch nothing; the commit still runs the hook
        _hit(self.request, self.request.form.get("name", "?"))
        return "ok"


class TaskConflict(BrowserView):
    """Raises ConflictError on the task's first attempt (through all of Zope's own retries)."""

    def __call__(self):
        if task_attempt(self.request) == 1:
            raise ConflictError("test conflict")
        _hit(self.request, self.request.form.get("name", "?"))
        return "ok after conflict"


class ConflictOnce(BrowserView):
    """A page (no task) that raises ConflictError on Zope's first try of the request and
    answers on its retry: the retry_count it was answered at, or 500 without Zope's retries."""

    def __call__(self):
        if self.request.retry_count == 0:
            raise ConflictError("test conflict on the first try")
        return f"answered at retry {self.request.retry_count}"


class TaskFail(BrowserView):
    def __call__(self):
        log.info("TASKFAIL %s attempt=%s", self.request.form.get("name"), task_attempt(self.request))
        raise RuntimeError("this task always fails")


class TaskCount(BrowserView):
    """Logs TASKSTART, sleeps ``seconds``, then adds 1 to ``counts[name]`` on the site (an
    OOBTree: runs of different names merge, two of one name conflict): a committed, countable
    change per run, so a test can prove each task committed exactly once."""

    def __call__(self):
        if not is_task(self.request):
            raise Forbidden("tasks only")
        name = self.request.form.get("name", "?")
        log.info("TASKSTART %s %s", name, os.environ.get("TXZ_TEST_INSTANCE", "-"))
        time.sleep(float(self.request.form.get("seconds", 0)))
        site = self.context
        if getattr(site, "_txz_task_counts", None) is None:
            site._txz_task_counts = OOBTree()
        site._txz_task_counts[name] = site._txz_task_counts.get(name, 0) + 1
        _hit(self.request, name)
        return "counted"


class TaskCounts(BrowserView):
    """JSON {name: committed runs} of TaskCount (read by the tests, not a task)."""

    def __call__(self):
        self.request.response.setHeader("Content-Type", "application/json")
        counts = getattr(self.context, "_txz_task_counts", None)
        return json.dumps(dict(counts.items()) if counts is not None else {})


class TaskSlow(BrowserView):
    def __call__(self):
        time.sleep(float(self.request.form.get("seconds", 1)))
        _hit(self.request, self.request.form.get("name", "?"))
        return "slept"
