"""The event bus on NATS JetStream: every committed event is stored in a stream, and every
instance reads the stream with a durable consumer of its own, so nothing is lost across a
restart of NATS, of a NATS node, or of the instance (within the stream's retention).
"""

import asyncio
import itertools
import secrets
import socket
import threading
import time
from collections import deque

from twisted.logger import Logger
from zope.interface import implementer

from .interfaces import IEventPublisher
from .lag import RoundTrips
from .message import UnsafeURL, from_wire
from .natsconn import NatsLoop, connect_options, shown
from .natsstream import (Arrivals, durable_consumer, ensure_stream, message_id, replicas_for,
                         reposition, subject_of, token, unnumbered)
from .security import OncePerMinute

log = Logger()

#: seconds a publish waits for JetStream's acknowledgement before it is tried again
PUBLISH_TIMEOUT = 2.0
#: events sent before waiting for their acknowledgements (a round trip each would bound the
#: rate by the latency: a few ms on a loaded machine)
PUBLISH_WINDOW = 256
#: seconds between attempts while NATS is unreachable (connect, stream set-up, publish)
RETRY_WAIT = 0.5
#: events read from the consumer at once, and how long one pull waits for the first
FETCH_BATCH = 256
FETCH_WAIT = 2.0
#: seconds ``close`` lets the queued events go out before it gives up on them
CLOSE_TIMEOUT = 3.0


def _nats_errors():
    import nats.errors
    import nats.js.errors
    return (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError, OSError)


@implementer(IEventPublisher)
class NatsBus:
    """Publishes to the ``<event-bus>`` stream and delivers the stream's events to the hub.

    ``publish`` (any thread) never waits for NATS: it stamps the events (instance, epoch,
    seq: the bus id ``instance:epoch:seq`` is the Nats-Msg-Id, so a publish retried after a
    lost acknowledgement is stored once), hands them to this instance's own hub at once (its
    own clients do not wait for, or lose, a round trip through NATS) and queues them for the
    NATS loop. While NATS is unreachable they wait in that queue, ``high-water-mark`` at
    most; beyond it they are dropped and counted (``dropped``), and the other instances are
    told of the gap. One coroutine publishes the queue in order (a window at a time, on one
    connection; a retry starts again at the first unacknowledged event).

    The durable consumer named after the instance acknowledges each batch only after the
    hub delivered it; ``Arrivals`` drops what was already delivered and counts real losses
    (a ``gap``), not reconnections or redeliveries.

    For the metrics, as ZmqBus: ``sent``, ``dropped``, ``received``, ``unsafe``, ``invalid``,
    ``lag``; ``published`` (acknowledged by JetStream). ``links_up()`` for health.
    """

    def __init__(self, reactor, hub, bus, instance=None, loop=None):
        self.reactor = reactor
        self.hub = hub
        self.bus = bus
        self.instance = instance or socket.gethostname()
        self.epoch = secrets.token_hex(8)
        self.consumer = token(self.instance)
        self.loop = loop or NatsLoop.instance()
        self.limit = bus.high_water_mark
        self.sent = 0  # the last sequence number used
        self.dropped = 0  # not published: the queue was full while NATS was away
        self.published = 0
        self.received = 0
        self.unsafe = 0
        self.invalid = 0
        self.round_trips = RoundTrips()
        self.arrivals = Arrivals(own_run=(self.instance, self.epoch))  # reactor thread
        self._queue = deque()  # stamped events not yet acknowledged by JetStream
        self._lock = threading.Lock()
        self._wake = None  # an asyncio.Event of the loop: the queue has events
        self._ready = False  # connected, stream and consumer set up
        self._delivered = 0  # the last stream sequence handed to the hub (loop thread)
        self._lost_link = False  # reconnected since: the consumer is repositioned
        self._nc = None
        self._psub = None
        self._task = None
        self._closed = False
        self._logs = OncePerMinute(lambda text: log.warn("{text}", text=text))

    @property
    def lag(self):
        return self.round_trips.latest

    def start(self):
        """Reactor thread: connect, set up the stream and the consumer, publish and consume."""
        self._task = self.loop.run(self._main())

    # IEventPublisher (any thread)

    def publish(self, events):
        own = []
        with self._lock:
            if self._closed:
                return
            for event in events:
                self.sent += 1
                event = event.stamped(self.instance, self.epoch, self.sent)
                own.append(event)
                if len(self._queue) >= self.limit:
                    self.dropped += 1
                    self._logs.warn("full", "event bus: NATS unreachable and %d events queued:"
                                    " dropped events (%d so far)", self.limit, self.dropped)
                    continue
                self._queue.append(event)
                self.round_trips.sent(self.sent)
        self.reactor.callFromThread(self._deliver_own, own)
        self.loop.call(self._wake_up)

    # Reactor thread

    def _deliver_own(self, events):
        for event in events:
            self.arrivals.local(event)
            self.hub.deliver(unnumbered(event))

    def _deliver_batch(self, batch, done):
        """Deliver what is new of a fetched batch; then let the loop acknowledge it."""
        try:
            for stream_seq, message in batch:
                if message is None:  # unreadable: counted, and not a gap either
                    self.arrivals.arrive(stream_seq, None)
                    continue
                missed, who, new = self.arrivals.arrive(stream_seq, message)
                if missed:
                    self.hub.announce_gap(who or self.bus.stream, missed)
                if message.instance == self.instance and message.epoch == self.epoch:
                    self.round_trips.came_back(message.seq)
                if new:
                    self.hub.deliver(unnumbered(message))
        finally:
            self.loop.call(_resolve, done)

    def links_up(self):
        """{the NATS servers: connected, with the stream and consumer set up}."""
        connected = self._ready and self._nc is not None and self._nc.is_connected
        return {shown(self.bus.nats_servers): connected}

    def close(self):
        """Let the queued events go out (``CLOSE_TIMEOUT`` at most), then disconnect."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.loop.run(self._shutdown()).result(CLOSE_TIMEOUT + 5)
        except Exception as exc:  # a stuck loop must not stop the server's shutdown
            log.warn("event bus: NATS shutdown: {exc!r}", exc=exc)
        if self._queue:
            log.warn("event bus: {count} event(s) not published at shutdown",
                     count=len(self._queue))

    # The NATS loop's thread

    def _wake_up(self):
        if self._wake is not None:
            self._wake.set()

    async def _main(self):
        self._wake = asyncio.Event()
        self._wake.set()  # events may have been queued before the loop got here
        nc = self._nc = await self._connect()
        js = nc.jetstream()
        await self._set_up(js)
        await asyncio.gather(self._forever(self._publishing, js),
                             self._forever(self._consuming, js))

    async def _forever(self, loop, js):
        """Run ``loop(js)`` again after an error nobody foresaw: the bus must not stop."""
        while True:
            try:
                await loop(js)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.failure("event bus: {name} failed (again in a moment)",
                            name=loop.__name__)
                await asyncio.sleep(RETRY_WAIT)

    async def _connect(self):
        import nats

        errors = _nats_errors()
        options = connect_options(self.bus, name=f"txzserver {self.instance}")
        options.update(disconnected_cb=self._disconnected, reconnected_cb=self._reconnected,
                       error_cb=self._error)
        while True:
            try:
                nc = await nats.connect(**options)
            except errors as exc:
                self._logs.warn("connect", "event bus: cannot reach NATS at %s (retrying): %r",
                                shown(self.bus.nats_servers), exc)
                await asyncio.sleep(RETRY_WAIT)
                continue
            log.info("event bus: connected to NATS {url}", url=shown(nc.connected_url.geturl()))
            return nc

    async def _set_up(self, js, next_seq=None):
        """Until it works: the stream, the durable consumer (from ``next_seq`` when given),
        and where reading resumes."""
        errors = _nats_errors()
        while True:
            try:
                await ensure_stream(js, self.bus, replicas_for(self.bus.nats_servers))
                if next_seq:
                    info = await reposition(js, self.bus, self.consumer, next_seq)
                else:
                    info = await durable_consumer(js, self.bus, self.consumer)
                if self._psub is None:
                    # One subscription for good: the consumer made anew keeps its name, and
                    # events answering an earlier pull land in this one's queue (a second
                    # subscription would leave them unread until ack-wait, out of order)
                    self._psub = await js.pull_subscribe_bind(durable=self.consumer,
                                                              stream=self.bus.stream)
            except errors as exc:
                self._logs.warn("setup", "event bus: cannot set up stream %s (retrying): %r",
                                self.bus.stream, exc)
                await asyncio.sleep(RETRY_WAIT)
                continue
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            if floor and not self._delivered:
                self._delivered = floor
                self.reactor.callFromThread(self._resume_at, floor)
            self._lost_link = False
            self._ready = True
            return

    def _resume_at(self, floor):
        if self.arrivals.stream_seq is None:
            self.arrivals.stream_seq = floor

    async def _publishing(self, js):
        import nats.errors

        while True:
            self._wake.clear()
            while self._queue:
                sent, problem = await self._publish_window(js)
                with self._lock:
                    for _ in range(sent):
                        self._queue.popleft()
                self.published += sent
                if problem is None:
                    continue
                if sent == 0 and isinstance(problem, nats.errors.MaxPayloadError):
                    with self._lock:  # it never fits: drop it
                        self._queue.popleft()
                    self.dropped += 1
                    self._logs.warn("size", "event bus: dropped an event too large for NATS: %r",
                                    problem)
                    continue
                self._logs.warn("publish", "event bus: cannot publish to NATS (retrying): %r",
                                problem)
                if isinstance(problem, nats.errors.NoRespondersError):
                    await self._set_up_stream(js)  # NATS came back without its store
                await asyncio.sleep(RETRY_WAIT)
            await self._wake.wait()

    async def _publish_window(self, js):
        """Send up to PUBLISH_WINDOW queued events at once, in queue order on the one
        connection (so stored in that order), then wait for their acknowledgements; return
        (how many from the head of the queue are stored, the first problem or None).

        A failed event and those after it stay queued and are sent again: the ones that were
        stored after all are dropped by JetStream (same Nats-Msg-Id), so the order holds."""
        errors = _nats_errors()
        futures, problem = [], None
        with self._lock:  # publish() appends from other threads
            window = list(itertools.islice(self._queue, PUBLISH_WINDOW))
        try:
            for event in window:
                futures.append(await js.publish_async(
                    subject_of(self.bus.stream, event), event.to_wire(), stream=self.bus.stream,
                    headers={"Nats-Msg-Id": message_id(event)}))
        except errors as exc:
            problem = exc
        sent = 0
        for future in futures:
            if problem is not None:
                future.cancel()
                continue
            try:
                await asyncio.wait_for(future, PUBLISH_TIMEOUT)
                sent += 1
            except errors as exc:
                problem = exc
            except asyncio.CancelledError:
                if not future.cancelled():  # this task is cancelled (close): not the future
                    raise
                problem = ConnectionError("the connection dropped the publish")
        return sent, problem

    async def _set_up_stream(self, js):
        try:
            await ensure_stream(js, self.bus, replicas_for(self.bus.nats_servers))
        except _nats_errors():
            pass

    async def _consuming(self, js):
        errors = _nats_errors()
        loop = asyncio.get_running_loop()
        while True:
            if self._lost_link and self._nc.is_connected:
                await self._set_up(js, self._delivered + 1 if self._delivered else None)
            try:
                msgs = await self._psub.fetch(FETCH_BATCH, timeout=FETCH_WAIT)
            except asyncio.TimeoutError:
                continue
            except errors as exc:
                self._logs.warn("fetch", "event bus: cannot read stream %s (retrying): %r",
                                self.bus.stream, exc)
                self._lost_link = True  # repositioned once NATS answers again
                await asyncio.sleep(RETRY_WAIT)
                continue
            msgs = await self._in_order(js, msgs)
            if not msgs:
                continue
            batch = [(msg.metadata.sequence.stream, self._read(msg.data)) for msg in msgs]
            done = loop.create_future()
            self.reactor.callFromThread(self._deliver_batch, batch, done)
            await done
            self._delivered = max(self._delivered, batch[-1][0])
            for msg in msgs:
                try:
                    await msg.ack()
                except errors:  # delivered again later, and then dropped as a duplicate
                    break

    async def _in_order(self, js, msgs):
        """The fetched events that follow the last delivered one without a hole.

        Already delivered ones (redeliveries) are acknowledged and left out. A hole the
        stream still holds the events of (they were sent and lost on the way, and would come
        back after ack-wait, out of order) ends the batch there: the consumer is made anew
        after the last delivered event. A hole the stream no longer holds is a real loss:
        ``Arrivals`` announces it."""
        kept, expected = [], self._delivered + 1 if self._delivered else None
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            if expected is not None and seq < expected:
                try:
                    await msg.ack()
                except _nats_errors():
                    pass
                continue
            if expected is not None and seq > expected:
                try:
                    first = (await js.stream_info(self.bus.stream)).state.first_seq
                except _nats_errors():
                    first = 0
                if first <= expected:
                    self._lost_link = True  # repositioned before the next fetch
                    break
            kept.append(msg)
            expected = seq + 1
        return kept

    def _read(self, data):
        self.received += 1
        try:
            return from_wire(data)
        except UnsafeURL as exc:
            self.unsafe += 1
            self._logs.warn("unsafe-url", "dropped an event from the bus with an unsafe url"
                            " (%d so far): %s", self.unsafe, exc)
        except (ValueError, TypeError, RecursionError) as exc:
            self.invalid += 1
            self._logs.warn("invalid", "dropped a message from the bus that is not of its"
                            " schema (%d so far): %s", self.invalid, exc)
        return None

    async def _shutdown(self):
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while self._queue and self._ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()  # the concurrent future's cancel reaches the loop's task
        if self._nc is not None:
            try:
                await self._nc.close()
            except _nats_errors():
                pass

    async def _disconnected(self):
        log.warn("event bus: disconnected from NATS (reconnecting)")

    async def _reconnected(self):
        self._lost_link = True
        log.info("event bus: reconnected to NATS {url}", url=shown(self._nc.connected_url.geturl()))

    async def _error(self, exc):
        self._logs.warn("error", "event bus: NATS: %r", exc)


def _resolve(future):
    if not future.done():
        future.set_result(None)

