"""Publishers of committed events: in-process, or over ZeroMQ to every instance.

Both provide IEventPublisher (as bus/natsbus.py's NatsBus does): ``publish(events)`` may be
called from any thread (the Zope transaction's after-commit hook) and never blocks on the
network.
"""

import secrets
import socket

import zmq
from zmq.utils.monitor import recv_monitor_message

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from .interfaces import IEventPublisher
from .message import DEFAULT_HEARTBEAT_INTERVAL, Heartbeat, UnsafeURL, from_wire
from .lag import RoundTrips
from .security import ClientSecurity
from .zmqreader import ZmqReader, context

log = Logger()


@implementer(IEventPublisher)
class LocalPublisher:
    """No event bus configured: deliver to this process's connections only (nothing is
    received from, dropped by, or linked to a bus: those counters stay 0)."""

    received = dropped = unsafe = invalid = 0
    lag = None

    def __init__(self, reactor, hub):
        self.reactor = reactor
        self.hub = hub
        self.sent = 0  # events published (for the metrics)

    def publish(self, events):
        for event in events:
            self.sent += 1
            self.reactor.callFromThread(self.hub.deliver, event)

    def start(self):
        pass

    def close(self):
        pass

    def links_up(self):
        return {}


@implementer(IEventPublisher)
class ZmqBus(ZmqReader):
    """PUB to the broker's frontend, SUB from its backend; received events go to the hub.

    ZeroMQ reconnects by itself when the broker restarts (and re-sends the subscription).
    The SUB socket's file descriptor is edge-triggered: every wake-up drains the socket
    completely. The PUB socket is shared by publisher threads under a lock; a PUB socket
    never blocks (messages beyond the high-water mark are dropped, which ZeroMQ counts).

    Every event sent is stamped with ``instance``, this bus's ``epoch`` (random, new at every
    start) and the next sequence number, taken under the same lock as the send, so numbers
    follow the send order and an event dropped here still uses its number: the hubs that
    miss it see the jump and tell their clients (``Hub.deliver``). Every ``heartbeat_interval``
    seconds, and once more when closed, a ``Heartbeat`` carries the last number used, so a
    loss is noticed even when no event follows it (``Hub.heard``).

    With ``watch`` (a <health-server> is configured) each socket's link to the broker is
    watched (``LinkWatch``), and ``links_up()`` tells the readiness probe.

    For the metrics: ``sent``, ``dropped`` (the PUB socket full), ``received`` (events and
    principal changes; heartbeats are counted by the hub), ``unsafe``
    (received events dropped for a url that is not http(s): Plone sends none), and ``lag``,
    the seconds the latest of this bus's own events took through the broker and back
    (``RoundTrips``).

    Reading, locking and closing are ``ZmqReader``'s, shared with the task queue's backend.
    """

    log_prefix = "txzserver-bus"

    def __init__(self, reactor, hub, publish_endpoint, subscribe_endpoint, instance=None,
                 watch=False, security=None, heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL):
        self.hub = hub
        self.instance = instance or socket.gethostname()  # the default of instance-name
        self.epoch = secrets.token_hex(8)
        self.sent = 0  # the last sequence number used
        self.dropped = 0  # not sent: the PUB socket was full
        self.round_trips = RoundTrips()
        ctx = context()
        security = security or ClientSecurity()
        self.pub = security.socket(ctx, zmq.PUB, publish_endpoint)
        self.pub.setsockopt(zmq.LINGER, 1000)
        # Queue only on a live connection: while the broker is down, events are dropped now
        # (and reported as a gap) instead of bursting out, stale, when it is back.
        self.pub.setsockopt(zmq.IMMEDIATE, 1)
        self.sub = security.socket(ctx, zmq.SUB, subscribe_endpoint)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        # With ``watch`` (the readiness probe asks): monitors set before connecting, so the
        # first CONNECTED is not missed.
        self.links = {}
        if watch:
            self.links = {publish_endpoint: LinkWatch(self.pub),
                          subscribe_endpoint: LinkWatch(self.sub)}
        self.pub.connect(publish_endpoint)
        self.sub.connect(subscribe_endpoint)
        super().__init__(reactor, reading=self.sub, sockets=(self.pub, self.sub))
        self.received = 0
        self.unsafe = 0  # received events dropped: their url was not http(s)
        self.heartbeat_interval = heartbeat_interval
        self._beat = LoopingCall(self.heartbeat)
        self._beat.clock = reactor

    @property
    def lag(self):
        return self.round_trips.latest

    def start(self):
        """Reactor thread: watch the SUB socket, and send a heartbeat now and then every
        ``heartbeat_interval`` (the first one gives the hubs already listening a baseline)."""
        self._beat.start(self.heartbeat_interval, now=True)
        self.start_reading()

    def heartbeat(self, final=False):
        """Send this run's last sequence number (any thread). Under the publishers' lock, so
        it follows every event it counts on the same socket; ``final``: the run stops."""
        with self._lock:
            if self._closed:
                return
            try:
                self.pub.send(Heartbeat(self.instance, self.epoch, self.sent, final).to_wire(),
                              zmq.NOBLOCK)
            except zmq.Again:
                pass  # the socket is full: the next heartbeat says the same

    # IEventPublisher (any thread)

    def publish(self, events):
        with self._lock:
            if self._closed:
                return
            for event in events:
                self.sent += 1
                event = event.stamped(self.instance, self.epoch, self.sent)
                self.round_trips.sent(self.sent)
                try:
                    self.pub.send(event.to_wire(), zmq.NOBLOCK)
                except zmq.Again:
                    self.dropped += 1
                    log.warn("event bus full: dropped an event for {what}",
                             what=getattr(event, "path", "principals"))

    def links_up(self):
        """{endpoint: connected} of the PUB and SUB sockets; empty unless built with ``watch``
        (reactor thread)."""
        return {endpoint: watch.is_connected() for endpoint, watch in self.links.items()}

    def close(self):
        """Send the final heartbeat (the hubs learn the run's last number and forget it; the
        PUB socket lingers up to a second to deliver it) and close the sockets."""
        self.heartbeat(final=True)
        super().close()

    # ZmqReader (reactor thread)

    def receive(self, data):
        try:
            event = from_wire(data)
        except UnsafeURL as exc:
            self.received += 1
            self.unsafe += 1
            self._logs.warn("unsafe-url", "dropped an event from the bus with an unsafe url"
                            " (%d so far): %s", self.unsafe, exc)
            return
        except (ValueError, TypeError, RecursionError) as exc:
            self.received += 1
            self.refuse("a message from the bus", exc)
            return
        if not isinstance(event, Heartbeat):  # heartbeats are counted by the hub
            self.received += 1
            if event.epoch == self.epoch and event.instance == self.instance:
                self.round_trips.came_back(event.seq)
        self.hub.deliver(event)

    def closing(self):
        if self._beat.running:
            self._beat.stop()
        for watch in self.links.values():
            watch.close()


class LinkWatch:
    """Whether a connecting socket has a connection to its peer, from ZeroMQ's monitor events,
    read when asked (one thread). ZeroMQ heartbeats (PING every 2 s, none answered within
    6 s: disconnected) make a peer that vanished without closing the connection (a killed
    pod, a cut network) show as down too."""

    EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED

    def __init__(self, socket):
        socket.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        self.socket = socket
        self.monitor = socket.get_monitor_socket(self.EVENTS)
        self.connected = False

    def is_connected(self):
        while self.monitor is not None:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            self.connected = event["event"] == zmq.EVENT_CONNECTED
        return self.connected

    def close(self):
        if self.monitor is not None:
            self.socket.disable_monitor()
            self.monitor.close()
            self.monitor = None
