"""The nats task backend: durable tasks in a JetStream work-queue stream.

Committed tasks of queue NAME are published to the subject ``txzserver.tasks.NAME`` of the stream
``TXZSERVER_TASKS_NAME`` (retention WorkQueue: a task stays until it is acknowledged, at most
max-age), each with ``Nats-Msg-Id`` = its id, so a publish retried after a lost PubAck is stored
once (within the stream's duplicate window). Every instance pulls from the one durable consumer
``txzserver-tasks`` (explicit ack): NATS hands a task to one instance, and again after ack-wait
when that one did not acknowledge it (it died, or lost NATS).

An instance fetches only as many tasks as its runner has free slots (concurrency minus the
tasks it holds). A held task is acknowledged once its run committed (or the ledger showed that
an earlier run had: tasks/ledger.py), terminated when it was given up (dead-letter log), and
reported "in progress" every third of ack-wait while it runs or waits for a retry. At shutdown
the tasks still held are nak'ed, so another instance takes them at once.

All NATS work runs on the process's NatsLoop; the held messages are touched only in the loop's
thread, the runner only in the reactor's (``to_reactor``).

A response that follows a commit must follow its tasks' durability (an instance killed right
after answering "queued" must not take them along): ``submit`` runs in the after-commit hook, in
the Zope thread that committed, and Zope's publish_module calls start_response only after the
commit, so ``submit`` waiting there for the PubAcks holds the response until NATS stored the
tasks. The wait is bounded by the queue's publish-wait: with NATS unreachable the response goes
out, and the tasks stay in memory, offered again every second, with a warning naming them. It
never waits in the reactor's thread or the loop's own.
"""

import asyncio
import concurrent.futures
import logging
import threading
import time

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NoStreamResponseError, ServiceUnavailableError
from twisted.python.threadable import isInIOThread

from ..bus.natsconn import NatsLoop, connect_options
from ..bus.security import OncePerMinute
from .ledger import DoneLedger, kept_periods, period_of, zope_db
from .task import Task

log = logging.getLogger("txzserver.tasks")

STREAM_PREFIX = "TXZSERVER_TASKS_"
SUBJECT_PREFIX = "txzserver.tasks."
CONSUMER = "txzserver-tasks"
#: seconds within which a task published twice (a retry after a lost PubAck) is stored once
DUPLICATE_WINDOW = 120.0
#: seconds to wait for one PubAck, then for the first task of a fetch
PUBLISH_TIMEOUT = 5.0
FETCH_WAIT = 5.0
#: seconds a committed task is offered to NATS (while it is unreachable) before it is given up
PUBLISH_GIVE_UP = 600.0
#: publishes awaiting their PubAck at once: a transaction's tasks are stored in about one round
#: trip (one after the other, 50 tasks on an R3 stream would add 50 replication round trips)
PUBLISH_WINDOW = 64
#: what NATS answers when the stream or the consumer is not there (a node started on a new
#: store, someone deleted it): both are made again
MISSING = (NoStreamResponseError, ServiceUnavailableError)


def stream_config(settings):
    """The work-queue stream of a TaskQueueSettings (backend nats)."""
    return StreamConfig(
        name=STREAM_PREFIX + settings.name, subjects=[SUBJECT_PREFIX + settings.name],
        retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
        max_age=settings.max_age, duplicate_window=min(DUPLICATE_WINDOW, settings.max_age),
        num_replicas=settings.replicas)


def consumer_config(settings):
    """The durable pull consumer every instance of the queue shares."""
    return ConsumerConfig(
        durable_name=CONSUMER, name=CONSUMER, ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait, max_deliver=settings.max_deliver,
        filter_subject=SUBJECT_PREFIX + settings.name, num_replicas=settings.replicas)


class NatsBackend:
    """One queue's publisher and consumer on NATS JetStream (the ``<event-bus>``'s servers)."""

    def __init__(self, reactor, runner, bus, loop=None, ledger=None, name="txzserver"):
        self.reactor = reactor
        self.runner = runner
        self.settings = runner.settings
        self.bus = bus
        self.loop = loop or NatsLoop.instance()
        self.name = name
        self.stream = STREAM_PREFIX + self.settings.name
        self.subject = SUBJECT_PREFIX + self.settings.name
        self.ledger = ledger or DoneLedger(zope_db)
        self.keep = kept_periods(self.settings.max_age)
        runner.on_finished = self._finished
        runner.once = self._once
        self.periods = {}  # task id -> ledger period (reactor thread)
        self.held = {}  # task id -> its delivered messages (loop thread)
        self.nc = self.js = self.sub = None
        self.published = self.received = self.acked = self.terminated = self.invalid = 0
        self._ready = asyncio.Event()  # connected, stream and consumer there (loop thread)
        self._room = asyncio.Event()  # a held task was settled
        self._workers = []
        self._repairing = asyncio.Lock()
        self._closed = False
        self._logs = OncePerMinute(lambda text: log.warning("%s", text))

    # any thread

    def submit(self, tasks):
        """Publish committed ``tasks``; in a Zope thread, return once NATS stored them all, or
        after publish-wait (a warning names those not yet stored; they are offered again)."""
        if self._closed:
            return
        tasks, stored = list(tasks), set()
        future = self.loop.run(self._publish(tasks, stored))
        if self.settings.publish_wait <= 0 or isInIOThread() \
                or threading.current_thread() is self.loop.thread:
            return
        try:
            future.result(self.settings.publish_wait)
        except concurrent.futures.TimeoutError:
            waiting = [task.id for task in tasks if task.id not in stored]
            log.warning("task queue %s: NATS did not store %d task(s) within publish-wait %gs:"
                        " not durable yet, held in this instance's memory and offered again:"
                        " %s", self.settings.name, len(waiting), self.settings.publish_wait,
                        " ".join(waiting))
            future.add_done_callback(lambda _: self._stored_late(waiting, stored))
        except concurrent.futures.CancelledError:
            pass  # the loop stopped: the tasks were given up (dead-letter log)

    def _stored_late(self, waiting, stored):
        late = [task_id for task_id in waiting if task_id in stored]
        if late:
            log.info("task queue %s: NATS stored %d task(s) after publish-wait, durable now: %s",
                     self.settings.name, len(late), " ".join(late))

    # reactor thread

    def start(self):
        self.runner.start()
        self.loop.run(self._run())

    def close(self, timeout=5):
        """After shutdown: stop fetching, nak what is held, close the connection."""
        if self._closed:
            return
        self._closed = True
        try:
            self.loop.run(self._close()).result(timeout)
        except Exception as exc:
            log.warning("task queue %s: closing the NATS connection: %s", self.settings.name, exc)

    def _once(self, task):
        period = self.periods.get(task.id)
        return None if period is None else (self.ledger, period, self.keep)

    def _deliver(self, task, period):
        self.periods[task.id] = period
        self.runner.enqueue(task)

    def _finished(self, task, done):
        self.periods.pop(task.id, None)
        if not self._closed:
            self.loop.run(self._settle(task.id, done))

    # loop thread

    async def _run(self):
        await self._connect()
        self._workers = [asyncio.ensure_future(self._fetch()),
                         asyncio.ensure_future(self._progress())]

    async def _connect(self):
        """Connect, make (or update) the stream and the consumer; retried until it works."""
        while not self._closed:
            try:
                if self.nc is None:
                    self.nc = await nats.connect(
                        **connect_options(self.bus, name=f"{self.name} tasks {self.settings.name}"))
                    self.js = self.nc.jetstream()
                await self._ensure_consumer()
                self.sub = await self.js.pull_subscribe_bind(durable=CONSUMER, stream=self.stream)
                self._ready.set()
                log.info("task queue %s: NATS stream %s, consumer %s", self.settings.name,
                         self.stream, CONSUMER)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._logs.warn("connect", "task queue %s: NATS not ready (%s: %s); trying again",
                                self.settings.name, type(exc).__name__, exc)
                await asyncio.sleep(1)

    async def _ensure_consumer(self):
        """The stream (made, or updated to this configuration's limits) and the consumer."""
        config = stream_config(self.settings)
        try:
            await self.js.add_stream(config)
        except BadRequestError:  # there with other limits: take this configuration's
            await self.js.update_stream(config)
        await self.js.add_consumer(self.stream, config=consumer_config(self.settings))

    async def _repair(self, exc):
        """After a MISSING answer: make the stream and the consumer again (once at a time)."""
        if self._repairing.locked():
            return
        async with self._repairing:
            try:
                await self._ensure_consumer()
                log.warning("task queue %s: NATS had no stream or consumer (%s): made again",
                            self.settings.name, type(exc).__name__)
            except Exception as error:
                self._logs.warn("repair", "task queue %s: making the stream again failed: %s",
                                self.settings.name, error)

    async def _publish(self, tasks, stored):
        """Publish ``tasks`` (up to PUBLISH_WINDOW awaiting their PubAck at once), adding the id
        of each one NATS stored to ``stored``; done when each is stored or given up."""
        deadline = time.monotonic() + PUBLISH_GIVE_UP
        window = asyncio.Semaphore(PUBLISH_WINDOW)
        await asyncio.gather(*(self._publish_one(task, stored, deadline, window) for task in tasks))

    async def _publish_one(self, task, stored, deadline, window):
        async with window:
            while True:
                try:
                    if not self._ready.is_set():
                        await asyncio.wait_for(self._ready.wait(), PUBLISH_TIMEOUT)
                    await self.js.publish(self.subject, task.to_wire(), timeout=PUBLISH_TIMEOUT,
                                          headers={"Nats-Msg-Id": task.id})
                    self.published += 1
                    stored.add(task.id)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self._closed or time.monotonic() > deadline:
                        reason = f"NATS did not store it: {type(exc).__name__}: {exc}"
                        NatsLoop.to_reactor(self.reactor, self.runner.give_up, task, 0, reason)
                        return
                    self._logs.warn("publish", "task queue %s: publishing a task failed (%s: %s);"
                                    " trying again", self.settings.name, type(exc).__name__, exc)
                    if isinstance(exc, MISSING):
                        await self._repair(exc)
                    await asyncio.sleep(1)

    def free(self):
        return self.settings.concurrency - len(self.held)

    async def _fetch(self):
        while not self._closed:
            if self.free() <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                messages = await self.sub.fetch(self.free(), timeout=FETCH_WAIT)
            except asyncio.CancelledError:
                raise
            except TimeoutError:  # nothing queued (asyncio's and nats-py's are this one)
                continue
            except Exception as exc:
                self._logs.warn("fetch", "task queue %s: fetching from NATS failed (%s: %s)",
                                self.settings.name, type(exc).__name__, exc)
                if isinstance(exc, MISSING):
                    await self._repair(exc)
                await asyncio.sleep(1)
                continue
            for message in messages:
                await self._take(message)

    async def _take(self, message):
        self.received += 1
        try:
            task = Task.from_wire(message.data)
        except (ValueError, TypeError, RecursionError) as exc:
            self.invalid += 1
            self._logs.warn("invalid", "task queue %s: terminated a message that is not a task"
                            " (%d so far): %s", self.settings.name, self.invalid, exc)
            await message.term()
            return
        if task.id in self.held:  # delivered again while it runs here: one run answers both
            self.held[task.id].append(message)
            return
        self.held[task.id] = [message]
        period = period_of(message.metadata.timestamp.timestamp())
        NatsLoop.to_reactor(self.reactor, self._deliver, task, period)

    async def _settle(self, task_id, done):
        for message in self.held.pop(task_id, ()):
            try:
                if done:
                    await message.ack()
                    self.acked += 1
                else:
                    await message.term()
                    self.terminated += 1
                    log.warning("task %s given up: terminated in NATS (not delivered again)", task_id)
            except Exception as exc:  # NATS delivers it again after ack-wait: the ledger answers
                self._logs.warn("ack", "task queue %s: acknowledging a task failed: %s",
                                self.settings.name, exc)
        self._room.set()

    async def _progress(self):
        """Every third of ack-wait: the held tasks are still being worked on."""
        while not self._closed:
            await asyncio.sleep(self.settings.ack_wait / 3)
            for messages in list(self.held.values()):
                for message in messages:
                    try:
                        await message.in_progress()
                    except Exception as exc:
                        self._logs.warn("progress", "task queue %s: in-progress ack failed: %s",
                                        self.settings.name, exc)

    async def _close(self):
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self.nc is None:
            return
        held = [message for messages in self.held.values() for message in messages]
        for message in held:
            try:
                await message.nak()
            except Exception:
                pass  # delivered again after ack-wait
        if held:
            log.info("task queue %s: %d held task(s) handed back to NATS", self.settings.name, len(held))
        self.held.clear()
        try:
            await self.nc.drain()
        except Exception:
            await self.nc.close()
