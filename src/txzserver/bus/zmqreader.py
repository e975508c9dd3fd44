"""The reactor's side of a ZeroMQ client: one socket read on the reactor thread, written from
any thread, closed once. The event bus (``ZmqBus``: SUB) and the task queue (``ZmqBackend``:
PULL) are both one.
"""

import threading

import zmq
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

from .security import OncePerMinute

log = Logger()


def context():
    """The process's one ZeroMQ context."""
    return zmq.Context.instance()


def drain(sock, more=lambda: True):
    """The messages waiting on ``sock``, read without blocking while ``more()`` says so.

    A ZeroMQ socket's FD is edge-triggered: it wakes the reactor once for a whole burst, so a
    reader must take everything waiting on each wake-up (or stop on purpose, ``more``).
    """
    while more() and sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
        try:
            yield sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return


@implementer(IReadDescriptor)
class ZmqReader:
    """Reads ``reading`` (one of ``sockets``) on every wake-up of the reactor, as far as
    ``more()`` allows, handing each message to ``receive(data)``; ``close()`` (any thread,
    once) stops reading and closes ``sockets`` in their order.

    ``_lock`` serializes the writers with ``close`` (a socket is not thread-safe, and a closed
    one must not be written to): a subclass sends under it and only while not ``_closed``.
    ``invalid`` counts the messages dropped for not being of the schema (``refuse``), logged
    at most once a minute (a hostile peer could flood the log).
    """

    #: the name Twisted logs the reader's failures under
    log_prefix = "txzserver-zmq"

    def __init__(self, reactor, reading, sockets):
        self.reactor = reactor
        self.reading = reading
        self.sockets = tuple(sockets)
        self.invalid = 0
        self._lock = threading.Lock()
        self._closed = False
        self._logs = OncePerMinute(lambda text: log.warn("{text}", text=text))

    def start_reading(self):
        """Reactor thread: watch the socket, and read what came before (the edge has passed)."""
        self.reactor.addReader(self)
        self.doRead()

    def more(self):
        """Whether to read another message now (a subclass adds its own limit)."""
        return not self._closed

    def receive(self, data):
        """One message read (reactor thread)."""
        raise NotImplementedError

    def refuse(self, what, exc):
        """Count and log a message that is not of the schema (``what``: "a task from the
        broker")."""
        self.invalid += 1
        self._logs.warn("invalid", "dropped %s that is not of its schema (%d so far): %s",
                        what, self.invalid, exc)

    def closing(self):
        """Called once by ``close`` before the sockets close: stop what uses them."""

    # IReadDescriptor (reactor thread)

    def fileno(self):
        return self.reading.getsockopt(zmq.FD)

    def doRead(self):
        for data in drain(self.reading, self.more):
            self.receive(data)

    def connectionLost(self, reason):
        self.close()

    def logPrefix(self):
        return self.log_prefix

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.closing()
        self.reactor.removeReader(self)
        for sock in self.sockets:
            sock.close()
