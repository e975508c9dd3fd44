"""The nats task backend (tasks/natsqueue.py) against a real nats-server, without Zope: real
NatsBackend, TaskRunner, NatsLoop and thread pool in this process, a thread acting as the
reactor, a small WSGI app and an in-memory done-ledger in place of Zope and the ZODB (the
whole path through Plone and ZEO is tests/integration/test_tasks_nats.py).

Proved: a task published twice (same Nats-Msg-Id) runs once and is removed from the work queue
once acknowledged; an instance fetches only as many tasks as it has free slots; a long task
kept "in progress" is not delivered elsewhere; an instance that dies holding tasks leaves them to
another after ack-wait, which runs them (or, if the ledger has the id, acknowledges without a
run); a given-up task is terminated, not delivered again; a lost stream is made again. And
``submit`` in a Zope thread returns only once NATS stored every task (publish-wait), or after
publish-wait with a warning naming those not yet stored when NATS is away; never waits in the
reactor's thread.
"""

import asyncio
import logging
import re
import threading
import time

import nats
import pytest
from twisted.python import threadable
from twisted.python.threadpool import ThreadPool

from tests.support.natsbus import PumpReactor
from tests.support.server import wait_for
from txzserver.config.datatypes import EventBusSettings, TaskQueueSettings
from txzserver.tasks.natsqueue import CONSUMER, NatsBackend
from txzserver.tasks.runner import TaskRunner
from txzserver.tasks.task import Task


class App:
    """A WSGI app: records each task it runs; waits while ``gate`` is closed; answers ``status``."""

    def __init__(self, status="200 OK"):
        self.status = status
        self.ran = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, environ, start_response):
        self.gate.wait(60)
        self.ran.append(environ["txzserver.task"])
        start_response(self.status, [])
        return [b"ok"]


class Ledger:
    """The done-ledger's interface over a set (the ZODB one is tested in tests/unit)."""

    def __init__(self, done=()):
        self.ids = set(done)

    def done(self, task_id, period):
        return task_id in self.ids


class Instance:
    """One "instance": reactor thread, pool, runner and nats backend of queue ``queue``."""

    def __init__(self, url, queue, app, ledger=None, concurrency=2, ack_wait=2.0, retries=0,
                 publish_wait=5.0):
        self.dead = False
        self.reactor = PumpReactor()
        self.pool = ThreadPool(concurrency, concurrency)
        self.pool.start()
        self.settings = TaskQueueSettings(queue, "nats", concurrency=concurrency, retries=retries,
                                          ack_wait=ack_wait, publish_wait=publish_wait)
        self.runner = TaskRunner(self.reactor, self.pool, self.settings, app=app)
        bus = EventBusSettings("ipc:///unused", "ipc:///unused", backend="nats", nats_servers=(url,))
        self.backend = NatsBackend(self.reactor, self.runner, bus, ledger=ledger or Ledger())
        self.reactor.call(self.backend.start)
        wait_for(lambda: self.backend.sub is not None, 30, what="the consumer")

    def held(self):
        return len(self.backend.held)

    def die(self, app):
        """What kill -9 leaves: the connection gone, nothing acknowledged or nak'ed; what
        ``app`` still runs never reaches the runner."""
        self.dead = True
        self.backend._closed = True
        self.backend.loop.run(self.backend.nc.close()).result(10)
        self.reactor.stop()
        app.gate.set()
        self.pool.stop()

    def close(self):
        if self.dead:
            return
        self.dead = True
        self.reactor.call(self.runner.stop)
        self.backend.close()
        self.pool.stop()
        self.reactor.stop()


def tasks(queue, prefix, count):
    return [Task(id=f"{prefix}{i}", queue=queue, path="/Plone/@@t") for i in range(count)]


def consumer_state(url, queue):
    """(stream messages, consumer ack-pending, consumer pending) from a client of its own."""
    async def read():
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            stream = await js.stream_info(f"TXZSERVER_TASKS_{queue}")
            consumer = await js.consumer_info(f"TXZSERVER_TASKS_{queue}", CONSUMER)
            return stream.state.messages, consumer.num_ack_pending, consumer.num_pending
        finally:
            await nc.close()
    return asyncio.run(read())


@pytest.fixture
def instances():
    started = []
    yield started
    for instance in started:
        instance.close()


def test_a_task_published_twice_runs_once_and_leaves_the_queue(nats_server, instances):
    app = App()
    alpha = Instance(nats_server.url, "dup", app)
    instances.append(alpha)
    alpha.backend.submit(tasks("dup", "a", 10))
    alpha.backend.submit(tasks("dup", "a", 4))  # the same ids again: a publish retried
    wait_for(lambda: alpha.backend.acked == 10, 30, what="10 acknowledgements")
    assert alpha.backend.published == 14
    assert sorted(app.ran) == sorted(f"a{i}" for i in range(10))
    wait_for(lambda: consumer_state(nats_server.url, "dup") == (0, 0, 0), 10, what="an empty queue")


def test_only_free_slots_are_fetched_and_in_progress_keeps_a_long_task(nats_server, instances):
    app = App()
    app.gate.clear()  # the tasks hang in the pool
    alpha = Instance(nats_server.url, "slots", app, concurrency=2, ack_wait=1.0)
    other = Instance(nats_server.url, "slots", App(), concurrency=2, ack_wait=1.0)
    instances.extend([alpha, other])
    alpha.backend.submit(tasks("slots", "s", 6))
    wait_for(lambda: alpha.held() == 2, 30, what="alpha holding 2")
    time.sleep(3)  # three ack-waits: alpha's in-progress acks keep its two
    assert alpha.held() == 2 and alpha.backend.received == 2
    ran_elsewhere = set(other.runner.app.ran)
    assert not ran_elsewhere & set(alpha.backend.held)
    app.gate.set()
    wait_for(lambda: alpha.backend.acked + other.backend.acked == 6, 30, what="6 acknowledgements")
    assert sorted(app.ran + other.runner.app.ran) == sorted(f"s{i}" for i in range(6))


def test_a_dead_instances_tasks_go_to_another_after_ack_wait(nats_server, instances):
    hung = App()
    hung.gate.clear()
    alpha = Instance(nats_server.url, "dead", hung, concurrency=2, ack_wait=2.0)
    instances.append(alpha)
    alpha.backend.submit(tasks("dead", "d", 2))
    wait_for(lambda: alpha.held() == 2, 30, what="alpha holding 2")
    taken_by_alpha = set(alpha.backend.held)
    alpha.die(hung)
    app = App()
    # d0's run committed on alpha before it died (the ZODB ledger would say so): not run again
    beta = Instance(nats_server.url, "dead", app, ledger=Ledger({"d0"}), concurrency=2, ack_wait=2.0)
    instances.append(beta)
    wait_for(lambda: beta.backend.acked == 2, 30, what="beta acknowledging both")
    assert taken_by_alpha == {"d0", "d1"} and app.ran == ["d1"]
    assert beta.runner.done == 2
    wait_for(lambda: consumer_state(nats_server.url, "dead") == (0, 0, 0), 10, what="an empty queue")


def test_a_given_up_task_is_terminated_not_delivered_again(nats_server, instances):
    app = App("404 Not Found")
    alpha = Instance(nats_server.url, "dead-letter", app, ack_wait=1.0)
    instances.append(alpha)
    alpha.backend.submit(tasks("dead-letter", "g", 1))
    wait_for(lambda: alpha.backend.terminated == 1, 30, what="the task terminated")
    time.sleep(3)  # past ack-wait: no redelivery
    assert app.ran == ["g0"] and alpha.runner.dead == 1
    assert consumer_state(nats_server.url, "dead-letter") == (0, 0, 0)


def test_a_lost_stream_is_made_again(nats_server, instances, caplog):
    """A NATS node started on a new store (or a deleted stream): the next publish or fetch
    finds no stream, the backend makes the stream and the consumer again and goes on."""
    app = App()
    alpha = Instance(nats_server.url, "lost", app)
    instances.append(alpha)
    alpha.backend.submit(tasks("lost", "before", 2))
    wait_for(lambda: alpha.backend.acked == 2, 30, what="2 acknowledgements")

    async def delete():
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().delete_stream("TXZSERVER_TASKS_lost")
        finally:
            await nc.close()
    asyncio.run(delete())
    alpha.backend.submit(tasks("lost", "after", 3))
    wait_for(lambda: alpha.backend.acked == 5, 60, what="3 more acknowledgements")
    assert sorted(app.ran) == ["after0", "after1", "after2", "before0", "before1"]
    assert "task queue lost: NATS had no stream or consumer" in caplog.text


def test_submit_returns_once_nats_stored_every_task(nats_server, instances):
    """In a Zope thread (here the test's), ``submit`` returns after the PubAcks: the stream
    holds every task at that moment (the runner is held: none is taken off it)."""
    app = App()
    app.gate.clear()
    alpha = Instance(nats_server.url, "stored", app, concurrency=2)
    instances.append(alpha)
    started = time.monotonic()
    alpha.backend.submit(tasks("stored", "s", 50))
    took = time.monotonic() - started
    assert alpha.backend.published == 50
    assert consumer_state(nats_server.url, "stored")[0] == 50
    print(f"submit of 50 tasks returned after their PubAcks in {took:.3f} s")
    app.gate.set()
    wait_for(lambda: alpha.backend.acked == 50, 60, what="50 acknowledgements")


def test_nats_away_submit_waits_publish_wait_warns_and_stores_later(nats_server, instances, caplog):
    """NATS stopped: a Zope thread's ``submit`` returns after publish-wait, with a warning
    naming the tasks not stored yet; the reactor's thread never waits. Once NATS is back, the
    tasks are stored (logged) and run."""
    caplog.set_level(logging.INFO, logger="txzserver.tasks")
    app = App()
    alpha = Instance(nats_server.url, "away", app, publish_wait=1.0)
    instances.append(alpha)
    previous = threadable.ioThread
    alpha.reactor.call(threadable.registerAsIOThread)  # the pump thread is the reactor's
    nats_server.stop()
    try:
        started = time.monotonic()
        alpha.backend.submit(tasks("away", "z", 3))
        waited = time.monotonic() - started
        started = time.monotonic()
        alpha.reactor.call(alpha.backend.submit, tasks("away", "r", 2))
        in_reactor = time.monotonic() - started
    finally:
        threadable.ioThread = previous
        nats_server.start()
    print(f"NATS away: submit waited {waited:.3f} s in a Zope thread, {in_reactor:.3f} s in the"
          " reactor's")
    assert 1.0 <= waited < 1.0 + 10
    assert in_reactor < waited  # scheduled only: no PubAck could come while NATS was away
    warned = re.findall(r"task queue away: NATS did not store (\d+) task\(s\) within publish-wait"
                        r" 1s: not durable yet, held in this instance's memory and offered again:"
                        r" ([\w ]+)", caplog.text)
    assert warned == [("3", "z0 z1 z2")]
    wait_for(lambda: alpha.backend.acked == 5, 60, what="5 acknowledgements after NATS is back")
    assert sorted(app.ran) == ["r0", "r1", "z0", "z1", "z2"]
    wait_for(lambda: "task queue away: NATS stored 3 task(s) after publish-wait, durable now:"
             " z0 z1 z2" in caplog.text, 30, what="the late store logged")
