"""Publishers of committed events: in-process, or over ZeroMQ to every instance.

Both provide IEventPublisher: ``publish(events)`` may be called from any thread (the Zope
transaction's after-commit hook) and never blocks on the network.
"""

import secrets
import socket
import threading

import zmq

from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

from .interfaces import IEventPublisher
from .message import Event

log = Logger()


@implementer(IEventPublisher)
class LocalPublisher:
    """No event bus configured: deliver to this process's connections only."""

    def __init__(self, reactor, hub):
        self.reactor = reactor
        self.hub = hub

    def publish(self, events):
        for event in events:
            self.reactor.callFromThread(self.hub.deliver, event)

    def close(self):
        pass


def context():
    """The process's one ZeroMQ context."""
    return zmq.Context.instance()


@implementer(IEventPublisher, IReadDescriptor)
class ZmqBus:
    """PUB to the broker's frontend, SUB from its backend; received events go to the hub.

    ZeroMQ reconnects by itself when the broker restarts (and re-sends the subscription).
    The SUB socket's file descriptor is edge-triggered: every wake-up drains the socket
    completely. The PUB socket is shared by publisher threads under a lock; a PUB socket
    never blocks (messages beyond the high-water mark are dropped, which ZeroMQ counts).

    Every event sent is stamped with ``instance``, this bus's ``epoch`` (random, new at every
    start) and the next sequence number, taken under the same lock as the send, so numbers
    follow the send order and an event dropped here still uses its number: the hubs that
    miss it see the jump and tell their clients (``Hub.deliver``).
    """

    def __init__(self, reactor, hub, publish_endpoint, subscribe_endpoint, instance=None):
        self.reactor = reactor
        self.hub = hub
        self.instance = instance or socket.gethostname()  # the default of instance-name
        self.epoch = secrets.token_hex(8)
        self.sent = 0  # the last sequence number used
        self._lock = threading.Lock()
        ctx = context()
        self.pub = ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 1000)
        self.pub.setsockopt(zmq.SNDHWM, 100000)
        # Queue only on a live connection: while the broker is down, events are dropped now
        # (and reported as a gap) instead of bursting out, stale, when it is back.
        self.pub.setsockopt(zmq.IMMEDIATE, 1)
        self.pub.connect(publish_endpoint)
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100000)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(subscribe_endpoint)
        self.received = 0
        self._closed = False

    def start(self):
        """Reactor thread: watch the SUB socket."""
        self.reactor.addReader(self)
        self.doRead()  # events may already be queued: the edge has passed

    # IEventPublisher (any thread)

    def publish(self, events):
        with self._lock:
            if self._closed:
                return
            for event in events:
                self.sent += 1
                event = event.stamped(self.instance, self.epoch, self.sent)
                try:
                    self.pub.send(event.to_wire(), zmq.NOBLOCK)
                except zmq.Again:
                    log.warn("event bus full: dropped an event for {path}", path=event.path)

    # IReadDescriptor (reactor thread)

    def fileno(self):
        return self.sub.getsockopt(zmq.FD)

    def doRead(self):
        while not self._closed and self.sub.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                data = self.sub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.received += 1
            try:
                event = Event.from_wire(data)
            except (ValueError, TypeError) as exc:
                log.warn("ignored a malformed event from the bus: {error}", error=exc)
                continue
            self.hub.deliver(event)

    def connectionLost(self, reason):
        self.close()

    def logPrefix(self):
        return "txzserver-bus"

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.reactor.removeReader(self)
        self.pub.close()
        self.sub.close()
