"""The nats task queue: durable tasks on a real nats-server (JetStream), a real ZEO server and two
real instances of the Plone site. Each task (@@test-task-count) adds 1 to its name's count in an
OOBTree on the site, so the ZODB itself says how often each task committed.

- nats-server stopped and started again while tasks are queued, and tasks committed while it is
  down: every task commits exactly once;
- an instance kill -9'd while it runs tasks: the tasks it held are delivered again to the other
  after ack-wait, and every task commits exactly once (runs it committed are not run again).
The kill test comes last: it leaves one instance.
"""

import re
import signal
import time

import pytest

from tests.support.cluster import running_cluster, zeo_storage_source
from tests.support.tasks import exactly_once, hits, queue, task_views, wait_hits

ACK_WAIT = 3


def nats_conf(url):
    # the events stream reserves its max-bytes of the server's store: room left for the tasks
    return (f"<event-bus>\n  backend nats\n  nats-server {url}\n  max-bytes 256MB\n</event-bus>\n"
            f"<task-queue default>\n  backend nats\n  concurrency 2\n  ack-wait {ACK_WAIT}s\n"
            "  retries 5\n  retry-delay 1s\n  retry-max-delay 2s\n</task-queue>")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, plone_template, nats_server):
    with running_cluster(tmp_path_factory.mktemp("natstasks"), zeo_storage_source(plone_template),
                         ("alpha", "beta"), threads=3, extra=nats_conf(nats_server.url),
                         options=lambda cluster, name: dict(prepare=task_views(name))) as cluster:
        yield cluster


def started(server, prefix):
    text = server.event_log.read_text(errors="replace")
    return set(re.findall(rf"TASKSTART ({prefix}\d+) ", text))


def test_tasks_queued_while_nats_restarts_all_commit_once(cluster, nats_server):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    assert queue(alpha, 30, target="test-task-count", prefix="R", seconds=0.5).status_code == 200
    wait_hits([alpha, beta], "R", 4)
    nats_server.stop()
    try:
        # committed while NATS is down: the instance keeps offering it until NATS is back
        assert queue(beta, 10, target="test-task-count", prefix="D").status_code == 200
        time.sleep(2)
    finally:
        nats_server.start()
    exactly_once(beta, "R", 30, settle=ACK_WAIT * 2)
    exactly_once(beta, "D", 10, settle=ACK_WAIT * 2)
    ran = {name for name, instance, *_ in hits([alpha, beta], "R")}
    assert len(ran) == 30
    per_instance = {name: len([h for h in hits([alpha, beta], "R") if h[1] == name])
                    for name in ("alpha", "beta")}
    print(f"R tasks committed per instance: {per_instance}")


def test_an_instance_killed_mid_task_leaves_its_tasks_to_the_other(cluster):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    assert queue(beta, 50, target="test-task-count", prefix="K", seconds=0.5).status_code == 200
    deadline = time.monotonic() + 120
    while len([h for h in hits([alpha], "K")]) < 3:  # alpha is in the middle of the queue
        assert time.monotonic() < deadline, "alpha ran no K tasks"
        time.sleep(0.05)
    beta_log_at_kill = len(beta.event_log.read_text(errors="replace"))
    alpha.stop(sig=signal.SIGKILL)
    interrupted = started(alpha, "K") - {name for name, *_ in hits([alpha], "K")}
    print(f"alpha killed while running {sorted(interrupted)}")
    found = exactly_once(beta, "K", 50, settle=ACK_WAIT * 2)
    assert len(found) == 50
    assert interrupted, "alpha was killed between tasks: nothing was interrupted"
    by_beta = {name for name, *_ in hits([beta], "K")}
    by_alpha = {name for name, *_ in hits([alpha], "K")}
    # A run alpha committed just before the kill, before its after-commit log line: beta got
    # it again after ack-wait, found its id in the ledger and did not run it.
    unlogged = set(found) - by_alpha - by_beta
    not_run_again = beta.event_log.read_text(errors="replace")[beta_log_at_kill:].count(
        "@@test-task-count (queue default) delivered again after its run committed: not run again")
    print(f"committed by alpha {len(by_alpha)}, by beta {len(by_beta)}, by alpha unlogged"
          f" {sorted(unlogged)}; beta did not run again {not_run_again}")
    assert by_alpha and unlogged <= interrupted and len(unlogged) <= not_run_again
    assert interrupted - unlogged <= by_beta  # redelivered to beta after ack-wait, committed there
