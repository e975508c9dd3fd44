"""Sending one event to thousands of connections: the frame once, one send() per connection.

``write_now(transport, data)`` hands ``data`` to the kernel at once when nothing is queued
before it on a plain TCP transport, instead of Twisted's buffered write (append to the
transport's buffer, register it as a writer, send on the next reactor turn, unregister): for a
fan-out to 10,000 connections that round trip was half of the reactor's time, and no client
got its event before the whole delivery loop had ended. Anything else (TLS, data already
queued, a connection closing, a full socket) goes through ``transport.write`` as before, so
ordering, backpressure (the transport's producer) and error handling stay Twisted's.

``Batch``: during one delivery (``Hub.deliver``) the direct sends are collected instead, and
made by the reactor thread and one helper thread at once: send() releases the GIL, and on a
loopback or a fast network the kernel's work per send is most of a delivery's time. The
delivery returns once both are done; what a full socket did not take is then written the
usual way, in order, by the reactor thread.

Twisted's private names used here (tests/unit/test_ws_sending.py checks they still exist):
"""

import threading
from concurrent.futures import ThreadPoolExecutor

#: Attributes of twisted.internet.abstract.FileDescriptor read by ``write_now`` (a TCP
#: transport's ``socket`` is public: Twisted documents it on tcp.Connection).
PRIVATE_TWISTED_NAMES = ("_tempDataBuffer", "_writeDisconnected")

#: Below this many sends a batch is sent by the reactor thread alone.
SPLIT_AT = 512


def _can_send_now(transport):
    return (getattr(transport, "TLS", True) is False and transport.connected
            and not transport.disconnecting and not transport._writeDisconnected
            and not transport.dataBuffer and not transport._tempDataBuffer)


def _send(sock, data):
    """Any thread: how much of ``data`` the socket took (0 when full or broken: the caller
    then hands it to ``transport.write``, and Twisted's next write finds the error and closes
    as usual). Never raises: a helper thread's exception would lose the other sends."""
    try:
        return sock.send(data)
    except Exception:  # BlockingIOError (full), OSError (lost), a socket already closed
        return 0


def write_now(transport, data):
    """Reactor thread: write ``data`` to ``transport``, sending it at once when possible."""
    if _can_send_now(transport):
        sent = _send(transport.socket, data)
        if sent >= len(data):
            return
        data = data[sent:]
    transport.write(data)


class Batch:
    """The direct sends of one delivery, made by two threads (reactor thread only, except
    the helper's ``_send_all``)."""

    def __init__(self, split_at=SPLIT_AT):
        self.split_at = split_at
        self.pending = None  # transport -> [data, ...] while a delivery collects
        self._helper = None
        self._lock = threading.Lock()

    def begin(self):
        self.pending = {}

    def write(self, transport, data):
        pending = self.pending
        if pending is None:
            return write_now(transport, data)
        queued = pending.get(transport)
        if queued is not None:
            queued.append(data)  # a gap and an event in one delivery: in order, one send
        elif _can_send_now(transport):
            pending[transport] = [data]
        else:
            transport.write(data)

    def flush(self):
        pending, self.pending = self.pending, None
        if not pending:
            return
        items = [(t, d[0] if len(d) == 1 else b"".join(d)) for t, d in pending.items()]
        if len(items) < self.split_at:
            leftovers = self._send_all(items)
        else:
            half = len(items) // 2
            future = self._executor().submit(self._send_all, items[half:])
            leftovers = self._send_all(items[:half])
            leftovers += future.result()
        for transport, rest in leftovers:
            transport.write(rest)

    @staticmethod
    def _send_all(items):
        leftovers = []
        for transport, data in items:
            sent = _send(transport.socket, data)
            if sent < len(data):
                leftovers.append((transport, data[sent:]))
        return leftovers

    def _executor(self):
        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="txzserver-fanout")
        return self._helper

    def close(self):
        if self._helper is not None:
            self._helper.shutdown(wait=False)
            self._helper = None
