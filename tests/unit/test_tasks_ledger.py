"""The done-task ledger (tasks/ledger.py) on a real ZODB (a FileStorage in tmp_path: it resolves
BTree conflicts as ZEO's does; no sockets),
and the runner's use of it (``execute`` with ``once``, ``on_finished``); the nats backend's
stream and consumer configuration."""

import logging
import time

import pytest
import transaction
from nats.js.api import AckPolicy, RetentionPolicy, StorageType
from persistent.mapping import PersistentMapping
from ZODB import DB
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError

from tests.support.threadpools import SynchronousThreadPool
from tests.unit.helpers import ThreadsReactor
from txzserver.config.datatypes import TaskQueueSettings
from txzserver.tasks import ledger
from txzserver.tasks.natsqueue import CONSUMER, consumer_config, stream_config
from txzserver.tasks.runner import ALREADY_DONE, TaskRunner, execute
from txzserver.tasks.task import Task

HOUR = ledger.PERIOD


@pytest.fixture
def db(tmp_path):
    database = DB(FileStorage(str(tmp_path / "Data.fs")))
    yield database
    database.close()


def session(db):
    manager = transaction.TransactionManager()
    return manager, db.open(transaction_manager=manager)


def test_a_recorded_id_is_done_in_its_period_only(db):
    manager, connection = session(db)
    ledger.record(connection.root(), "t1", 100, keep=3, now=100 * HOUR)
    manager.commit()
    done = ledger.DoneLedger(lambda: db)
    assert done.done("t1", 100) and not done.done("t1", 101) and not done.done("t2", 100)
    connection.close()


def test_recording_an_id_twice_in_one_snapshot_refuses(db):
    manager, connection = session(db)
    ledger.record(connection.root(), "t1", 100, keep=3, now=100 * HOUR)
    manager.commit()
    with pytest.raises(ledger.TaskAlreadyDone):
        ledger.record(connection.root(), "t1", 100, keep=3, now=100 * HOUR)
    manager.abort()
    connection.close()


def test_two_runs_of_one_id_at_once_conflict_and_different_ids_merge(db):
    """What makes two concurrent runs of one task commit once: the later commit conflicts."""
    manager, connection = session(db)
    ledger.record(connection.root(), "seed", 100, keep=3, now=100 * HOUR)  # the set exists
    manager.commit()
    runs = [session(db) for _ in range(3)]
    for (manager, connection), task_id in zip(runs, ("same", "same", "other")):
        ledger.record(connection.root(), task_id, 100, keep=3, now=100 * HOUR)
    runs[0][0].commit()
    with pytest.raises(ConflictError):
        runs[1][0].commit()
    runs[1][0].abort()
    runs[2][0].commit()  # another id in the same bucket: BTrees resolve it
    done = ledger.DoneLedger(lambda: db)
    assert done.done("same", 100) and done.done("other", 100) and done.done("seed", 100)


def test_periods_older_than_keep_are_pruned_when_a_newer_one_is_written(db):
    manager, connection = session(db)
    for period in (90, 95, 100):
        ledger.record(connection.root(), f"t{period}", period, keep=5, now=period * HOUR)
    manager.commit()
    assert list(connection.root()[ledger.LEDGER].keys()) == [95, 100]  # 90 < 100 - 5
    connection.close()


def test_kept_periods_cover_max_age():
    assert ledger.kept_periods(24 * HOUR) == 26
    assert ledger.kept_periods(60) == 2
    assert ledger.period_of(3 * HOUR + 59) == 3


class Request:
    """What on_before_commit reads of a Zope request: environ and PARENTS (app last)."""

    def __init__(self, environ, app):
        self.environ = environ
        self.parents = [object(), app]

    def get(self, key, default=None):
        return self.parents if key == "PARENTS" else default


class Event:
    def __init__(self, request):
        self.request = request


def test_the_commit_hook_records_only_durable_task_runs(db):
    manager, connection = session(db)
    connection.root()["Application"] = app = PersistentMapping()
    manager.commit()
    ledger.on_before_commit(Event(Request({"txzserver.task": "x1"}, app)))  # local queue
    ledger.on_before_commit(Event(Request({}, app)))  # no task
    assert ledger.LEDGER not in connection.root()
    now = ledger.period_of(time.time())
    environ = {"txzserver.task": "x2", ledger.ONCE_KEY: ledger.once_value(now, 3)}
    ledger.on_before_commit(Event(Request(environ, app)))
    manager.commit()
    assert ledger.DoneLedger(lambda: db).done("x2", now)
    with pytest.raises(ledger.TaskAlreadyDone):  # a Zope retry after a conflict sees the other run
        ledger.on_before_commit(Event(Request(environ, app)))
    connection.close()


# The runner with a ledger

class App:
    def __init__(self):
        self.environs = []

    def __call__(self, environ, start_response):
        self.environs.append(environ)
        start_response(environ.get("answer", "200 OK"), [])
        return [b"ok"]


class Ledger:
    def __init__(self, done=(), error=None):
        self.ids, self.error = set(done), error

    def done(self, task_id, period):
        if self.error:
            raise self.error
        return task_id in self.ids


def task(task_id="t1"):
    return Task(id=task_id, queue="default", path="/Plone/@@t")


def test_execute_skips_a_done_id_and_marks_a_run_to_record():
    app = App()
    assert execute(app, task("done"), 1, (Ledger({"done"}), 7, 3))[0] == ALREADY_DONE
    assert app.environs == []
    assert execute(app, task("new"), 1, (Ledger({"done"}), 7, 3))[0] == 200
    assert app.environs[0][ledger.ONCE_KEY] == "7:3"
    execute(app, task("local"), 1)
    assert ledger.ONCE_KEY not in app.environs[1]  # local and zmq queues: nothing recorded
    status, detail = execute(app, task("new"), 1, (Ledger(error=OSError("ZEO away")), 7, 3))
    assert status is None and "ZEO away" in detail  # retried as a failed run


def test_the_runner_reports_each_outcome_to_the_backend(caplog):
    reactor = ThreadsReactor()
    settings = TaskQueueSettings("default", "nats", concurrency=1, retries=0)
    runner = TaskRunner(reactor, SynchronousThreadPool(), settings, app=App())
    outcomes = []
    runner.on_finished = lambda t, done: outcomes.append((t.id, done))
    runner.once = lambda t: (Ledger({"old"}), 1, 3)
    with caplog.at_level(logging.INFO, "txzserver.tasks"):
        runner.enqueue(task("new"))
        runner.enqueue(task("old"))
        runner.give_up(task("bad"), 1, "4xx")
    assert outcomes == [("new", True), ("old", True), ("bad", False)]
    assert "task old GET /Plone/@@t (queue default) delivered again after its run committed" \
        in caplog.text


# The stream and the consumer

def test_one_work_queue_stream_and_one_shared_durable_consumer_per_queue():
    settings = TaskQueueSettings("bulk", "nats", ack_wait=45, max_deliver=4, max_age=7200,
                                 replicas=3)
    stream = stream_config(settings)
    assert (stream.name, stream.subjects, stream.retention, stream.storage) == (
        "TXZSERVER_TASKS_bulk", ["txzserver.tasks.bulk"], RetentionPolicy.WORK_QUEUE,
        StorageType.FILE)
    assert (stream.max_age, stream.duplicate_window, stream.num_replicas) == (7200, 120, 3)
    consumer = consumer_config(settings)
    assert (consumer.durable_name, consumer.ack_policy, consumer.ack_wait, consumer.max_deliver,
            consumer.filter_subject) == (CONSUMER, AckPolicy.EXPLICIT, 45, 4, "txzserver.tasks.bulk")
    assert stream_config(TaskQueueSettings("q", "nats", max_age=60)).duplicate_window == 60
