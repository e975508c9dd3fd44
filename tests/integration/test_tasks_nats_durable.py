"""The nats task queue's promise to the request that queued tasks: once its response arrived, its
tasks are in NATS (publish-wait), on a real nats-server, a real ZEO server and real instances of
the Plone site. Each task (@@test-task-count) adds 1 to its name's count on the site, so the ZODB
says how often each task committed.

- alpha answers "queued 50" and is killed -9 at once: all 50 are in the stream, and beta,
  started afterwards, commits each exactly once;
- nats-server stopped: a request that queues tasks answers after publish-wait (not sooner, not
  much later), a warning names the tasks not yet durable, and they run once NATS is back.
"""

import asyncio
import re
import signal
import time

import nats
import pytest

from tests.support.cluster import running_cluster, zeo_storage_source
from tests.support.tasks import exactly_once, hits, queue, task_views, wait_log
from tests.support.server import wait_for
from txzserver.tasks.natsqueue import CONSUMER

ACK_WAIT = 3
PUBLISH_WAIT = 2.0
STREAM = "TXZSERVER_TASKS_default"
NOT_DURABLE = re.compile(r"task queue default: NATS did not store (\d+) task\(s\) within"
                         r" publish-wait 2s: not durable yet, held in this instance's memory"
                         r" and offered again: ([0-9a-f ]+)")
STORED_LATE = re.compile(r"task queue default: NATS stored (\d+) task\(s\) after publish-wait,"
                         r" durable now: ([0-9a-f ]+)")
DONE = re.compile(r"task ([0-9a-f]{16}) GET /Plone/@@test-task-count \(queue default\) done: 200")


def nats_conf(url):
    # the events stream reserves its max-bytes of the server's store: room left for the tasks
    return (f"<event-bus>\n  backend nats\n  nats-server {url}\n  max-bytes 256MB\n</event-bus>\n"
            f"<task-queue default>\n  backend nats\n  concurrency 3\n  ack-wait {ACK_WAIT}s\n"
            f"  publish-wait {PUBLISH_WAIT:g}s\n</task-queue>")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, plone_template, nats_server):
    with running_cluster(tmp_path_factory.mktemp("natsdurable"),
                         zeo_storage_source(plone_template)) as cluster:
        yield cluster


def instance(cluster, nats_server, name):
    """The running instance ``name`` of the cluster, started on first use."""
    if name not in cluster.instances:
        cluster.start_instance(name, threads=5, extra=nats_conf(nats_server.url),
                               prepare=task_views(name))
    return cluster.instances[name]


def stream_state(url):
    """(messages in the task stream, the consumer's pending + ack-pending), read by a client of
    the test's own."""
    async def read():
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            stream = await js.stream_info(STREAM)
            consumer = await js.consumer_info(STREAM, CONSUMER)
            return stream.state.messages, consumer.num_pending + consumer.num_ack_pending
        finally:
            await nc.close()
    return asyncio.run(read())


def test_tasks_are_in_nats_when_the_response_arrives_and_survive_a_kill(cluster, nats_server):
    alpha = instance(cluster, nats_server, "alpha")
    # two seconds each: alpha cannot commit one of the tasks it takes between their publish and
    # the kill, so every task must come to beta through the stream
    response = queue(alpha, 50, target="test-task-count", prefix="K", seconds=2)
    alpha.stop(sig=signal.SIGKILL)
    assert response.status_code == 200 and response.text == "queued 50", response.text[:300]
    messages, pending = stream_state(nats_server.url)
    print(f"at alpha's kill: {messages} tasks in the stream, {pending} pending or taken")
    assert (messages, pending) == (50, 50)
    assert not NOT_DURABLE.search(alpha.event_log.read_text(errors="replace"))
    beta = instance(cluster, nats_server, "beta")
    exactly_once(beta, "K", 50, settle=ACK_WAIT * 2)
    assert hits([alpha], "K") == []
    assert sorted(name for name, *_ in hits([beta], "K")) == sorted(f"K{i}" for i in range(50))
    wait_for(lambda: stream_state(nats_server.url) == (0, 0), 30, what="an empty task stream")


def test_nats_down_a_request_answers_after_publish_wait_and_its_tasks_run_later(
        cluster, nats_server):
    beta = instance(cluster, nats_server, "beta")
    started = time.monotonic()
    assert queue(beta, 10, target="test-task-count", prefix="B").status_code == 200
    baseline = time.monotonic() - started  # NATS up: the PubAcks come at once
    exactly_once(beta, "B", 10, settle=ACK_WAIT * 2)
    offset = len(beta.event_log.read_text(errors="replace"))
    nats_server.stop()
    try:
        started = time.monotonic()
        response = queue(beta, 10, target="test-task-count", prefix="D")
        elapsed = time.monotonic() - started
        assert response.status_code == 200 and response.text == "queued 10", response.text[:300]
        wait_log(beta, "NATS did not store 10 task(s) within publish-wait")
        warned = NOT_DURABLE.search(beta.event_log.read_text(errors="replace")[offset:])
    finally:
        nats_server.start()
    print(f"request queueing 10 tasks: {baseline:.3f} s with NATS up, {elapsed:.3f} s with NATS"
          f" stopped (publish-wait {PUBLISH_WAIT} s)")
    assert PUBLISH_WAIT <= elapsed < PUBLISH_WAIT + max(15.0, 10 * baseline)
    assert warned and warned.group(1) == "10"
    not_durable = set(warned.group(2).split())
    assert len(not_durable) == 10
    exactly_once(beta, "D", 10, settle=ACK_WAIT * 2)
    text = beta.event_log.read_text(errors="replace")[offset:]
    assert set(DONE.findall(text)) == not_durable  # the very tasks the warning named ran
    late = STORED_LATE.search(text)
    assert late and set(late.group(2).split()) == not_durable
