"""txzserver.tasks without sockets: the Task and its environ, after-commit queueing, the runner
(retries, backoff, dead letter, concurrency) on a MemoryReactorClock with fake thread pools."""

import json
import logging

import pytest
import transaction
from twisted.internet.testing import MemoryReactorClock
from ZODB.POSException import ConflictError
from zope.component import getGlobalSiteManager
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.support.threadpools import ManualThreadPool, SynchronousThreadPool
from tests.unit.helpers import ThreadsReactor
from txzserver.config.datatypes import TaskQueueSettings
from txzserver.tasks import ITaskQueues, Task, TaskQueueError, add, is_task, task_attempt
from txzserver.tasks.backends import LocalBackend, TaskQueues
from txzserver.tasks.runner import TaskRunner, execute
from txzserver.tasks.task import task_environ


def make_task(**overrides):
    fields = dict(id="t1", queue="default", path="/Plone/f/@@work")
    fields.update(overrides)
    return Task(**fields)


# The task and its environ

def test_wire_round_trip_keeps_bytes_payloads():
    task = make_task(method="post", payload=b"\x00\xffdata", params=[("a", "1")],
                     headers={"X-A": "b"}.items(), userid="jane", user_folder="/Plone/acl_users")
    again = Task.from_wire(task.to_wire())
    assert again == task and again.method == "POST" and again.payload == b"\x00\xffdata"


def test_relative_paths_are_refused():
    with pytest.raises(ValueError):
        make_task(path="Plone/x")


def test_get_params_go_to_the_query_string():
    environ = task_environ(make_task(path="/Plone/f/@@work?x=1", params=[("n", "a b")]), 1)
    assert environ["REQUEST_METHOD"] == "GET" and environ["PATH_INFO"] == "/Plone/f/@@work"
    assert environ["QUERY_STRING"] == "x=1&n=a+b"
    assert environ["wsgi.input"].read() == b"" and environ["CONTENT_LENGTH"] == "0"


def test_post_params_are_a_form_and_a_payload_is_the_body():
    form = task_environ(make_task(method="POST", params=[("n", "1")]), 1)
    assert form["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert form["wsgi.input"].read() == b"n=1" and form["QUERY_STRING"] == ""
    json_type = [("Content-Type", "application/json")]
    raw = task_environ(make_task(method="PUT", payload=b"{}", headers=json_type), 1)
    assert raw["CONTENT_TYPE"] == "application/json" and raw["wsgi.input"].read() == b"{}"


def test_environ_marks_the_task_and_keeps_the_queuing_host():
    task = make_task(userid="jane", user_folder="/Plone/acl_users", server_url="https://example.org:8443")
    environ = task_environ(task, 2)
    assert environ["HTTP_X_TXZSERVER_TASK"] == "t1" and environ["txzserver.task"] == "t1"
    assert environ["txzserver.task.runas"] == "jane"
    assert environ["txzserver.task.userfolder"] == "/Plone/acl_users"
    assert (environ["wsgi.url_scheme"], environ["HTTP_HOST"], environ["SERVER_PORT"]) == \
        ("https", "example.org:8443", "8443")
    assert is_task(environ) and task_attempt(environ) == 2


def test_a_client_header_does_not_make_a_task():
    class Request:
        environ = {"HTTP_X_TXZSERVER_TASK": "forged", "txzserver.task.attempt": "x"}
    assert not is_task(Request()) and task_attempt(Request()) == 0


def test_a_non_utf8_path_is_passed_as_latin1_of_its_utf8():
    assert task_environ(make_task(path="/Plone/café"), 1)["PATH_INFO"] == "/Plone/caf\xc3\xa9"


# After-commit queueing

@implementer(ITaskQueues)
class FakeQueues:
    def __init__(self, names=("default",), task_user=""):
        self._names = names
        self._task_user = task_user
        self.submitted = []

    def names(self):
        return self._names

    def task_user(self, name):
        return self._task_user

    def submit(self, tasks):
        self.submitted.append(list(tasks))


@pytest.fixture
def queues():
    fake = FakeQueues()
    registry = getGlobalSiteManager()
    registry.registerUtility(fake, ITaskQueues)
    transaction.abort()
    yield fake
    transaction.abort()
    registry.unregisterUtility(fake, ITaskQueues)


def test_fake_provides_the_interface(queues):
    verifyObject(ITaskQueues, queues)
    queue_settings = [TaskQueueSettings("default")]
    verifyObject(ITaskQueues, TaskQueues.build(MemoryReactorClock(), SynchronousThreadPool(), queue_settings))


def test_tasks_are_submitted_once_after_commit_in_order(queues):
    ids = [add(f"/Plone/@@t{i}", params={"i": i}) for i in range(3)]
    assert queues.submitted == []
    transaction.commit()
    assert [[t.id for t in batch] for batch in queues.submitted] == [ids]
    assert [t.path for t in queues.submitted[0]] == ["/Plone/@@t0", "/Plone/@@t1", "/Plone/@@t2"]
    assert queues.submitted[0][0].userid == ""  # Anonymous here
    transaction.commit()
    assert len(queues.submitted) == 1


def test_an_aborted_transaction_submits_nothing(queues):
    add("/Plone/@@t")
    transaction.abort()
    transaction.commit()
    assert queues.submitted == []


def test_a_rolled_back_savepoint_forgets_later_tasks(queues):
    add("/Plone/@@kept")
    savepoint = transaction.savepoint()
    add("/Plone/@@dropped")
    savepoint.rollback()
    transaction.commit()
    assert [t.path for t in queues.submitted[0]] == ["/Plone/@@kept"]


def test_an_unknown_queue_is_refused_at_once(queues):
    with pytest.raises(TaskQueueError, match="no task queue 'other'"):
        add("/Plone/@@t", queue="other")


def test_a_queue_task_user_replaces_the_current_user(queues):
    queues._task_user = "robot"
    add("/Plone/@@t", payload="text")
    transaction.commit()
    task = queues.submitted[0][0]
    assert (task.userid, task.user_folder, task.payload) == ("robot", "", b"text")


def test_without_a_server_add_says_so():
    transaction.abort()
    with pytest.raises(TaskQueueError, match="txzserver serve"):
        add("/Plone/@@t")


# The runner

def settings(**overrides):
    values = dict(name="default", concurrency=1, retries=2, retry_delay=1.0, retry_max_delay=3.0)
    values.update(overrides)
    return TaskQueueSettings(**values)


class App:
    """A WSGI app answering the statuses given, one per call (then 200)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.environs = []

    def __call__(self, environ, start_response):
        self.environs.append(environ)
        answer = self.answers.pop(0) if self.answers else "200 OK"
        if isinstance(answer, Exception):
            raise answer
        start_response(answer, [("Content-Type", "text/plain")])
        return [b"body of ", answer.encode()]


def runner_with(app, pool=None, **overrides):
    reactor = ThreadsReactor()
    return reactor, TaskRunner(reactor, pool or SynchronousThreadPool(), settings(**overrides), app=app)


def test_execute_returns_the_status_and_the_start_of_the_body():
    assert execute(App("201 Created"), make_task(), 1) == (201, "body of 201 Created")
    assert execute(App(ConflictError()), make_task(), 1)[0] is None
    assert execute(App(ValueError("boom")), make_task(), 1) == (None, "ValueError: boom")


def test_a_successful_task_runs_once(caplog):
    app = App()
    reactor, runner = runner_with(app)
    with caplog.at_level(logging.INFO, "txzserver.tasks"):
        runner.enqueue(make_task())
    assert len(app.environs) == 1 and runner.done == 1 and not reactor.getDelayedCalls()
    assert "done: 200 after 1 attempt(s)" in caplog.text


def test_conflict_and_5xx_are_retried_with_doubling_backoff():
    app = App(ConflictError(), "503 Service Unavailable")
    reactor, runner = runner_with(app)
    runner.enqueue(make_task())
    assert [c.getTime() for c in reactor.getDelayedCalls()] == [1.0]
    reactor.advance(1.0)
    assert [c.getTime() - reactor.seconds() for c in reactor.getDelayedCalls()] == [2.0]
    reactor.advance(2.0)
    assert runner.done == 1 and [e["txzserver.task.attempt"] for e in app.environs] == ["1", "2", "3"]


def test_the_backoff_is_capped():
    reactor, runner = runner_with(App(*["500 Internal Server Error"] * 4), retries=4, retry_max_delay=3.0)
    runner.enqueue(make_task())
    delays = []
    for _ in range(4):
        call, = reactor.getDelayedCalls()
        delays.append(call.getTime() - reactor.seconds())
        reactor.advance(delays[-1])
    assert delays == [1.0, 2.0, 3.0, 3.0]


def test_after_the_retries_the_task_goes_to_the_dead_letter_log(caplog):
    app = App(*["500 Internal Server Error"] * 5)
    reactor, runner = runner_with(app, retries=2)
    with caplog.at_level(logging.INFO):
        runner.enqueue(make_task(userid="jane"))
        reactor.advance(1.0)
        reactor.advance(2.0)
    assert len(app.environs) == 3 and runner.dead == 1 and not reactor.getDelayedCalls()
    record, = [r for r in caplog.records if r.name == "txzserver.tasks.deadletter"]
    assert record.levelno == logging.ERROR
    data = json.loads(record.getMessage().split(" ", 2)[2])
    assert data["attempts"] == 3 and data["task"]["userid"] == "jane" and data["reason"].startswith("500")


def test_4xx_is_not_retried(caplog):
    reactor, runner = runner_with(App("404 Not Found"))
    with caplog.at_level(logging.ERROR):
        runner.enqueue(make_task())
    assert runner.dead == 1 and not reactor.getDelayedCalls()
    assert "(not retried)" in caplog.text


def test_at_most_concurrency_tasks_are_in_the_pool():
    pool = ManualThreadPool()
    reactor, runner = runner_with(App(), pool=pool, concurrency=2)
    for i in range(5):
        runner.enqueue(make_task(id=f"t{i}"))
    assert len(pool.calls) == 2 and runner.running == 2 and len(runner.waiting) == 3
    assert not runner.has_room()
    pool.run()
    assert runner.done == 2 and len(pool.calls) == 2
    pool.run()
    pool.run()
    assert runner.done == 5 and runner.running == 0 and runner.has_room()


def test_tasks_wait_for_the_app():
    pool = ManualThreadPool()
    reactor, runner = runner_with(None, pool=pool)
    runner.enqueue(make_task())
    assert pool.calls == []
    runner.app = App()
    runner.start()
    assert len(pool.calls) == 1


def test_stop_drops_what_waits_and_says_so(caplog):
    pool = ManualThreadPool()
    reactor, runner = runner_with(App(), pool=pool)
    for i in range(3):
        runner.enqueue(make_task(id=f"t{i}"))
    with caplog.at_level(logging.WARNING):
        runner.stop()
    assert "2 task(s) of queue default not run" in caplog.text
    runner.enqueue(make_task(id="late"))
    pool.run()
    assert runner.done == 1 and not runner.waiting


def test_local_backend_hands_tasks_to_the_runner_through_the_reactor():
    app = App()
    reactor = ThreadsReactor()
    runner = TaskRunner(reactor, SynchronousThreadPool(), settings(), app=app)
    queues = TaskQueues({"default": LocalBackend(reactor, runner)})
    queues.submit([make_task(id="a"), make_task(id="b", queue="nosuch")])
    assert [e["txzserver.task"] for e in app.environs] == ["a"]
