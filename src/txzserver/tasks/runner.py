"""Run one queue's tasks as internal requests on the publisher thread pool.

The reactor side (``TaskRunner``) keeps the queue's waiting tasks and starts at most
``concurrency`` of them at once on the same ThreadPool that publishes HTTP requests, so tasks
can never take every publisher thread (the settings require the queues' concurrency to stay
below ``server-threads``). The worker side (``execute``) calls the WSGI app with a task environ
and returns the status; there is no socket and no client.

Outcomes: 2xx/3xx are done; ConflictError (after Zope's own retries) and 5xx are retried with
exponential backoff (``retry-delay`` doubled per attempt, at most ``retry-max-delay``) up to
``retries`` times; 4xx is not retried. A task that is given up is written to the dead-letter
log, the logger ``txzserver.tasks.deadletter``, one line with the task as JSON.
"""

import json
import logging
import time
from collections import deque

from twisted.internet.threads import deferToThreadPool
from ZODB.POSException import ConflictError

from ..transfer import close_body
from .ledger import ONCE_KEY, once_value
from .task import task_environ

log = logging.getLogger("txzserver.tasks")
deadletter = logging.getLogger("txzserver.tasks.deadletter")

#: response bytes kept for the log when a task fails
KEPT_BODY = 300
#: the outcome of a task whose id a committed run recorded before: not run again ("Already Reported")
ALREADY_DONE = 208


class _DiscardedFile:
    """``wsgi.file_wrapper`` of task requests: a file body is closed, never read."""

    def __init__(self, filelike, block_size=None):
        self.filelike = filelike

    def __iter__(self):
        return iter(())

    def close(self):
        close_body(self.filelike)


def execute(app, task, attempt, once=None):
    """Worker thread: publish ``task``; (status code or None, detail). Never raises.

    ``once``: (DoneLedger, period, keep) of a durable queue's task, or None."""
    environ = task_environ(task, attempt)
    if once is not None:
        ledger, period, keep = once
        try:
            if ledger.done(task.id, period):
                return ALREADY_DONE, "a run of this task committed before"
        except Exception as exc:  # the storage is away: retried as a failed run
            return None, f"reading the done-task ledger failed: {type(exc).__name__}: {exc}"
        environ[ONCE_KEY] = once_value(period, keep)
    environ["wsgi.file_wrapper"] = _DiscardedFile
    status = []

    def start_response(code, headers, exc_info=None):
        status[:] = [code]
        return lambda data: None

    try:
        result = app(environ, start_response)
    except ConflictError as exc:
        return None, f"ConflictError: {exc}"
    except Exception as exc:  # the app's failure is the task's outcome, not the runner's
        log.debug("task %s raised", task.id, exc_info=True)
        return None, f"{type(exc).__name__}: {exc}"
    kept = b""
    try:
        for part in result if isinstance(result, tuple) else (result,):
            try:
                for chunk in part if not isinstance(part, bytes) else (part,):
                    if len(kept) < KEPT_BODY:
                        kept += chunk[:KEPT_BODY - len(kept)]
            finally:
                close_body(part)
    except Exception as exc:
        return None, f"reading the response failed: {exc}"
    code = int(status[0].split()[0]) if status else 500
    return code, kept.decode("utf-8", "replace")


class TaskRunner:
    """One queue: waiting tasks, at most ``settings.concurrency`` in the pool. Reactor thread.

    ``app`` is set once Zope has started (tasks queued before wait). ``on_room`` (optional)
    is called whenever a slot frees up, so a zmq backend can pull the next task.
    ``on_finished(task, done)`` (optional) is called when a task is done (True) or given up
    (False); ``once(task)`` (optional) gives a task's ledger entry for ``execute``.
    """

    def __init__(self, reactor, pool, settings, app=None, on_room=None):
        self.reactor = reactor
        self.pool = pool
        self.settings = settings
        self.app = app
        self.on_room = on_room
        self.on_finished = None
        self.once = None
        self.waiting = deque()
        self.running = 0
        self.retrying = 0
        self.done = 0
        self.dead = 0
        self.stopped = False

    def has_room(self):
        """True while fewer tasks wait or run here than the queue may run at once."""
        return not self.stopped and self.running + len(self.waiting) < self.settings.concurrency

    def enqueue(self, task, attempt=1, queued=None):
        """Reactor thread: run ``task`` when a slot is free (``queued``: when it first came)."""
        if self.stopped:
            return
        self.waiting.append((task, attempt, queued or time.monotonic()))
        self._start_next()

    def enqueue_all(self, tasks):
        for task in tasks:
            self.enqueue(task)

    def _start_next(self):
        while self.app is not None and not self.stopped and self.waiting \
                and self.running < self.settings.concurrency:
            task, attempt, started = self.waiting.popleft()
            self.running += 1
            once = self.once(task) if self.once is not None else None
            d = deferToThreadPool(self.reactor, self.pool, execute, self.app, task, attempt, once)
            d.addCallback(self._finished, task, attempt, started)
            d.addErrback(lambda f: log.error("task runner failed: %s", f.getTraceback()))

    def start(self):
        """Reactor thread, once ``app`` is set: run what was queued meanwhile."""
        self._start_next()
        self._room()

    def _finished(self, outcome, task, attempt, started):
        self.running -= 1
        status, detail = outcome
        if status == ALREADY_DONE:
            self.done += 1
            log.info("task %s %s (queue %s) delivered again after its run committed: not run again",
                     task.id, task.describe(), task.queue)
            self._finish(task, True)
        elif status is not None and status < 400:
            self.done += 1
            self._finish(task, True)
            log.info("task %s %s (queue %s) done: %d after %d attempt(s), %.3f s after queueing", task.id,
                     task.describe(), task.queue, status, attempt, time.monotonic() - started)
        elif status is not None and status < 500:
            self.give_up(task, attempt, f"{status} (not retried): {detail}")
        elif attempt > self.settings.retries:
            self.give_up(task, attempt, f"{status or 'error'}: {detail}")
        else:
            delay = min(self.settings.retry_delay * 2 ** (attempt - 1), self.settings.retry_max_delay)
            log.warning("task %s %s (queue %s) attempt %d failed (%s: %s); retry in %.1f s",
                        task.id, task.describe(), task.queue, attempt, status or "error",
                        detail[:200], delay)
            self.retrying += 1
            self.reactor.callLater(delay, self._retry, task, attempt + 1, started)
        self._start_next()
        self._room()

    def _retry(self, task, attempt, queued):
        self.retrying -= 1
        self.enqueue(task, attempt, queued)

    def _room(self):
        if self.on_room is not None and self.has_room():
            self.on_room()

    def give_up(self, task, attempt, reason):
        self.dead += 1
        record = {"task": json.loads(task.to_wire()), "attempts": attempt, "reason": reason[:500]}
        deadletter.error("dead task %s", json.dumps(record, sort_keys=True))
        self._finish(task, False)

    def _finish(self, task, done):
        if self.on_finished is not None:
            self.on_finished(task, done)

    def stop(self):
        """Reactor thread, at shutdown: start nothing more; say what is dropped."""
        self.stopped = True
        dropped = len(self.waiting) + self.retrying
        if dropped and self.settings.backend == "nats":
            log.info("shutdown: %d task(s) of queue %s not run here: NATS delivers them again",
                     dropped, self.settings.name)
        elif dropped:
            log.warning("shutdown: %d task(s) of queue %s not run (task queues are not durable)",
                        dropped, self.settings.name)
        self.waiting.clear()
