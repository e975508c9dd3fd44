"""Background tasks on a real `txzserver serve` with the Plone site: queued after commit, run
once as internal requests through the publisher pool, as the user who queued them, retried on
ConflictError, dead-lettered after the retries; page requests answer while slow tasks run.
The test views are tests/support/taskviews.py (loaded through the instance's site.zcml).
"""

import time
from collections import Counter

import httpx
import pytest

from tests.support.instance import ADMIN, copy_instance_data, http_server, new_instance, with_task_views
from tests.support.latency import PageProbe
from tests.support.restapi import add_users, api
from tests.support.results import record
from tests.support.server import ServerProcess
from tests.support.tasks import hits, queue, wait_hits, wait_log

MEMBER = ("taskmember", "member-Secret-9")
CONF = """server-threads 5
max-conflict-retries 1
<task-queue default>
  concurrency 1
  retries 2
  retry-delay 1s
  retry-max-delay 2s
</task-queue>
<task-queue slow>
  concurrency 2
</task-queue>
<task-queue robot>
  task-user admin
</task-queue>
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, plone_template):
    directory = tmp_path_factory.mktemp("tasks")
    conf = new_instance(directory, http_server(0), CONF)
    copy_instance_data(plone_template["directory"], directory)
    env = dict(with_task_views(conf), TXZ_TEST_INSTANCE="solo")
    process = ServerProcess(conf, env=env).start()
    try:
        add_users(process, {MEMBER[0]: ["Member", "Editor"]}, MEMBER[1])
        yield process
    finally:
        process.stop()


def test_hundred_tasks_of_one_transaction_run_once_each(server):
    response = queue(server, 100, prefix="L")
    assert response.status_code == 200, response.text[:300]
    found = wait_hits([server], "L", 100)
    time.sleep(1)  # any duplicate would show up now
    names = Counter(name for name, *_ in hits([server], "L"))
    assert sorted(names) == sorted(f"L{i}" for i in range(100))
    assert set(names.values()) == {1}
    assert {user for _, _, user, _ in found} == {"admin"}  # root user folder, no password


def test_an_aborted_transaction_queues_nothing(server):
    assert queue(server, 5, prefix="A", abort=1).status_code == 500
    assert queue(server, 1, prefix="M").status_code == 200
    wait_hits([server], "M", 1)
    time.sleep(1)
    assert hits([server], "A") == []


def test_tasks_run_as_the_plone_user_who_queued_them(server):
    assert queue(server, 2, target="test-task-private", prefix="U", user=MEMBER).status_code == 200
    found = wait_hits([server], "U", 2)
    assert {user for _, _, user, _ in found} == {MEMBER[0]}  # PAS of the site, with its roles


def test_task_user_of_the_queue(server):
    assert queue(server, 1, target="test-task-private", prefix="R", user=MEMBER,
                 queue="robot").status_code == 200
    assert wait_hits([server], "R", 1)[0][2] == "admin"


def test_conflict_error_is_retried_and_succeeds(server):
    assert queue(server, 1, target="test-task-conflict", prefix="C").status_code == 200
    (name, _, _, attempt), = wait_hits([server], "C", 1)
    assert attempt == "2"
    failed = [line for line in server.event_log.read_text().splitlines()
              if "test-task-conflict" in line and "attempt 1 failed" in line]
    assert len(failed) == 1 and "ConflictError" in failed[0]  # Plone's error view: a 500


def test_a_page_that_meets_a_conflict_is_retried_by_zope(server):
    """zope.conf's max-conflict-retries reaches Zope (its root handler runs for our schema):
    a request whose first try raises ConflictError is published again, not answered 500."""
    response = httpx.get(server.url("/Plone/@@test-conflict-once"), timeout=60)
    assert (response.status_code, response.text) == (200, "answered at retry 1")


def test_failing_task_ends_in_the_dead_letter_log(server):
    assert queue(server, 1, target="test-task-fail", prefix="F").status_code == 200
    wait_log(server, "txzserver.tasks.deadletter")
    log = server.event_log.read_text()
    line = next(line for line in log.splitlines() if "dead task" in line)
    assert "ERROR [txzserver.tasks.deadletter]" in line
    assert '"attempts": 3' in line and "test-task-fail" in line
    assert log.count("TASKFAIL F0 ") == 3  # the first run and the 2 configured retries


def test_task_views_refuse_requests_that_are_no_tasks(server):
    forged = {"X-Txzserver-Task": "forged"}  # the header is informational: the environ key counts
    response = httpx.get(server.url("/Plone/@@test-task-hit"), auth=ADMIN, headers=forged)
    assert response.status_code == 403
    assert httpx.post(server.url("/Plone/big.bin/@@txzserver-reindex"), auth=ADMIN).status_code == 403


def test_example_view_reindexes_a_folder_in_tasks(server):
    api(server, "POST", "/Plone", json={"@type": "Folder", "id": "batch", "title": "Batch"})
    for i in range(3):
        api(server, "POST", "/Plone/batch", json={"@type": "Document", "id": f"d{i}", "title": f"D{i}"})
    response = httpx.get(server.url("/Plone/batch/@@txzserver-reindex-folder"), auth=MEMBER, timeout=60)
    assert response.status_code == 200 and "queued 3" in response.text
    for i in range(3):
        wait_log(server, f"task reindexed /Plone/batch/d{i}")
        # the runner logs the outcome after the task's own log line: wait for it too
        wait_log(server, f"POST /Plone/batch/d{i}/@@txzserver-reindex (queue default) done: 200")


def test_pages_answer_while_twenty_slow_tasks_run(server):
    """The slow tasks take the pool's slow queue (concurrency 2), not the page requests: the
    probe's pages while they run keep the pace of those just before (same server, same run)."""
    # The first front page of a process compiles its templates: before the baseline.
    assert httpx.get(server.url("/Plone"), timeout=30).status_code == 200
    with PageProbe(server.url("/Plone")) as probe:
        probe.baseline(10)
        assert queue(server, 20, target="test-task-slow", prefix="S", queue="slow",
                     seconds=1).status_code == 200
        wait_log(server, "TASKHIT S")  # tasks are running
        start = probe.mark()
        time.sleep(5)
        end = probe.mark()
        running = len(hits([server], "S"))
        verdict = probe.verdict("while slow tasks ran", start, end, min_samples=5)
    record("tasks", "pages_while_slow_tasks_ran", tasks_done_at_end=running, **verdict.figures())
    print(verdict.summary())
    assert running < 20, "the slow tasks were over before the probe ended"
    verdict.check()
    wait_hits([server], "S", 20, timeout=60)
