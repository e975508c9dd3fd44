"""Bus throughput with many subscribing processes, for the scale model (tests/bench/scale.py).

One point: a fresh bus (a real `txzserver broker` on loopback tcp, or a real nats-server with
JetStream), ``subscribers`` processes of their own, each reading and decoding every event as an
instance does (``from_wire``), and one publisher sending ``events`` Plone-sized events as fast
as the bus takes them. NATS as the nats backend (txzserver.bus.natsbus) uses it: a JetStream
stream, each event published with its bus id as ``Nats-Msg-Id`` (acknowledged by the stream,
at most ``NATS_PENDING`` acknowledgements outstanding), each subscriber a durable pull
consumer that fetches batches of ``FETCH_BATCH`` and acknowledges every message. The
subscribers are forked before the publisher connects (no ZeroMQ context or event loop crosses
a fork).

Measured per point: events/s (events over first send to last receipt by any subscriber),
deliveries/s (the same times the subscribers), the bus server's CPU seconds per delivery
(``/proc``: the broker or nats-server alone, not the clients), a subscriber's CPU seconds
per message (receive, decode, acknowledge: what the bus costs an instance), and messages
received again (redeliveries, counted apart: deliveries/s counts each event once).
"""

import asyncio
import multiprocessing
import os
import subprocess
import time

import zmq

from tests.support.instance import TXZSERVER
from tests.support.nats import NatsServer
from tests.support.server import free_port
from txzserver.bus import Event
from txzserver.bus.message import from_wire
from txzserver.bus.security import BusLimits, ClientSecurity

END = b"end"
PROBE = b"probe"
STREAM = "TXZSERVER_EVENTS"
SUBJECT = f"{STREAM}.Plone"  # the nats backend's subject: the stream, then the site
NATS_PENDING = 4000  # JetStream publish acknowledgements outstanding at once
FETCH_BATCH = 256  # as the nats backend's reader: fetch a batch, acknowledge each message
ACK_WAIT = 30.0  # the nats backend's consumer settings
MAX_ACK_PENDING = 20000
JOIN_SECONDS = 120  # every wait is bounded: a busy 2-core machine starts 100 processes slowly
RECEIVE_SECONDS = 300
TICKS = os.sysconf("SC_CLK_TCK")


def sample_event():
    """A Plone-sized event (the same as tests/bench/bus.py sends)."""
    return Event("modified", "/Plone/news/a-rather-ordinary-news-item", uid="a" * 32,
                 url="http://localhost:8080/Plone/news/a-rather-ordinary-news-item",
                 title="A rather ordinary news item", portal_type="News Item",
                 review_state="published", actor="editor@example.org",
                 time="2026-12-06T13:00:00+00:00", guard={"Anonymous", "Member", "Manager"},
                 instance="bench", epoch="0123456789abcdef")


def wires(events):
    """(bus id, wire bytes) of ``events`` stamped events."""
    event = sample_event()
    stamped = (event.stamped("bench", "0123456789abcdef", seq) for seq in range(1, events + 1))
    return [(f"{e.instance}:{e.epoch}:{e.seq}", e.to_wire()) for e in stamped]


def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class _Counter:
    """What a subscriber process reports: distinct events decoded, the time of the last, CPU
    spent, and messages that came again (a JetStream redelivery: an acknowledgement not in by
    the consumer's ack wait, which an instance drops by event id)."""

    def __init__(self):
        self.count, self.last, self.cpu_start, self.again = 0, None, None, 0
        self.seen = set()

    def got(self, data):
        if self.cpu_start is None:
            self.cpu_start = time.process_time()
        seq = from_wire(data).seq
        if seq in self.seen:
            self.again += 1
            return
        self.seen.add(seq)
        self.count += 1
        self.last = time.monotonic()

    def report(self):
        cpu = time.process_time() - self.cpu_start if self.cpu_start is not None else 0.0
        return self.count, self.last, cpu, self.again


# -- ZeroMQ ---------------------------------------------------------------------------------------

def _zmq_subscriber(endpoint, hwm, ready, conn):
    ctx = zmq.Context()
    sub = ClientSecurity(BusLimits(high_water_mark=hwm)).socket(ctx, zmq.SUB, endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    counter = _Counter()
    while sub.poll(RECEIVE_SECONDS * 1000):
        data = sub.recv()
        if data == PROBE:
            ready.set()
        elif data == END:
            break
        else:
            counter.got(data)
    conn.send(counter.report())
    sub.close(linger=0)
    ctx.term()


def zmq_point(directory, events, subscribers):
    hwm = events + 1000
    front, back = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    broker = subprocess.Popen([TXZSERVER, "broker", "--frontend", front, "--backend", back,
                               "--no-tasks", "--curve", "off", "--high-water-mark", str(hwm)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = []
    try:
        procs = _fork(_zmq_subscriber, (back, hwm), subscribers)
        ctx = zmq.Context()
        pub = ClientSecurity(BusLimits(high_water_mark=hwm)).socket(ctx, zmq.PUB, front)
        pub.connect(front)
        try:
            deadline = time.monotonic() + JOIN_SECONDS
            while not all(ready.is_set() for _, ready, _ in procs):
                if time.monotonic() > deadline:
                    raise RuntimeError("zmq subscribers did not join")
                pub.send(PROBE)
                time.sleep(0.05)
            time.sleep(0.5)  # the last probes drain
            messages = wires(events)
            cpu, began = cpu_seconds(broker.pid), time.monotonic()
            for _, data in messages:
                pub.send(data)
            pub.send(END)
            reports = _collect(procs)
            cpu = cpu_seconds(broker.pid) - cpu
        finally:
            pub.close(linger=0)
            ctx.term()
    finally:
        _reap(procs)
        broker.terminate()
        broker.wait(30)
    return _summary(events, subscribers, began, reports, cpu, len(messages[0][1]))


# -- NATS JetStream -------------------------------------------------------------------------------

def _nats_subscriber(url, index, ready, conn):
    asyncio.run(_nats_subscribe(url, index, ready, conn))


async def _nats_subscribe(url, index, ready, conn):
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(url, max_reconnect_attempts=0)
    js = nc.jetstream()
    counter = _Counter()
    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT,
                            max_ack_pending=MAX_ACK_PENDING)
    psub = await js.pull_subscribe(SUBJECT, durable=f"instance-{index}", stream=STREAM,
                                   config=config)
    ready.set()
    deadline, done = time.monotonic() + RECEIVE_SECONDS, False
    while not done and time.monotonic() < deadline:
        try:
            msgs = await psub.fetch(FETCH_BATCH, timeout=5)
        except asyncio.TimeoutError:
            continue
        for msg in msgs:
            if msg.data == END:
                done = True
            else:
                counter.got(msg.data)
            await msg.ack()
    conn.send(counter.report())
    await nc.drain()


async def _nats_publish(url, messages):
    import nats

    nc = await nats.connect(url, max_reconnect_attempts=0)
    js = nc.jetstream(publish_async_max_pending=NATS_PENDING)
    began = time.monotonic()
    for bus_id, data in messages:
        await js.publish_async(SUBJECT, data, headers={"Nats-Msg-Id": bus_id})
    await js.publish_async(SUBJECT, END, headers={"Nats-Msg-Id": "bench-end"})
    await asyncio.wait_for(js.publish_async_completed(), RECEIVE_SECONDS)
    await nc.close()
    return began


async def _make_stream(url):
    import nats

    nc = await nats.connect(url, max_reconnect_attempts=0)
    await nc.jetstream().add_stream(name=STREAM, subjects=[f"{STREAM}.>"],
                                    max_age=24 * 3600, max_bytes=1 << 30, duplicate_window=300)
    await nc.close()


def nats_point(directory, events, subscribers):
    server = NatsServer(directory / f"nats-{subscribers}-{time.monotonic_ns()}")
    server.start()
    procs = []
    try:
        asyncio.run(_make_stream(server.url))
        procs = _fork(_nats_subscriber, (server.url,), subscribers, with_index=True)
        deadline = time.monotonic() + JOIN_SECONDS
        while not all(ready.is_set() for _, ready, _ in procs):
            if time.monotonic() > deadline:
                raise RuntimeError("nats subscribers did not join")
            time.sleep(0.05)
        messages = wires(events)
        cpu = cpu_seconds(server.process.pid)
        began = asyncio.run(_nats_publish(server.url, messages))
        reports = _collect(procs)
        cpu = cpu_seconds(server.process.pid) - cpu
    finally:
        _reap(procs)
        server.stop()
    return _summary(events, subscribers, began, reports, cpu, len(messages[0][1]))


# -- the processes --------------------------------------------------------------------------------

def _fork(target, args, count, with_index=False):
    context = multiprocessing.get_context("fork")
    procs = []
    for index in range(count):
        ready, (mine, theirs) = context.Event(), context.Pipe()
        extra = (index,) if with_index else ()
        proc = context.Process(target=target, args=args + extra + (ready, theirs), daemon=True)
        proc.start()
        procs.append((proc, ready, mine))
    return procs


def _collect(procs):
    deadline = time.monotonic() + RECEIVE_SECONDS
    return [mine.recv() if mine.poll(max(0.0, deadline - time.monotonic())) else (0, None, 0.0, 0)
            for _, _, mine in procs]


def _reap(procs):
    for proc, _, _ in procs:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def _summary(events, subscribers, began, reports, server_cpu, size):
    received = sum(report[0] for report in reports)
    lasts = [report[1] for report in reports if report[1] is not None]
    seconds = (max(lasts) - began) if lasts else None
    cpus = [cpu / (count + again) for count, _, cpu, again in reports if count]
    return {
        "subscribers": subscribers, "events": events, "event_bytes": size,
        "delivered_share": received / (events * subscribers),
        "redelivered": sum(report[3] for report in reports),
        "seconds": round(seconds, 3) if seconds else None,
        "events_per_s": round(events / seconds, 1) if seconds else None,
        "deliveries_per_s": round(received / seconds, 1) if seconds else None,
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_per_delivery_s": server_cpu / received if received else None,
        "subscriber_cpu_per_event_s": sorted(cpus)[len(cpus) // 2] if cpus else None,
    }
