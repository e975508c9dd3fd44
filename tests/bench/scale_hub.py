"""What fan-out costs an instance per WebSocket subscriber, for the scale model (scale.py).

One ``Hub`` of a ``NotificationService`` (its real ``Batch`` of direct sends, two threads)
holds ``connections`` real NotificationProtocol objects in the open state, each on a real TCP
connection over loopback whose other end a process of its own reads and discards. Each
subscriber has one of ``USERS`` token sets (the users of a site) and the site root as its
path; every event is allowed to all of them (the worst case: every connection gets every
event). ``events`` events are delivered one after the other by ``Hub.deliver`` (what the
bus reader calls on the reactor thread); the CPU time of this process (``process_time``:
the reactor thread, the send helper and the kernel's work in their send calls, which on
loopback includes the receiving side's TCP processing) over the deliveries, divided by
events and connections, is the cost per event per subscriber. The sockets are drained between
events (not timed), so no send meets a full buffer.

The transport is the one piece that is not Twisted's: ``SocketTransport`` has exactly the
attributes ``sending.write_now`` and ``Batch`` read of a Twisted TCP transport, on a real
socket, so every send is the kernel call a real connection makes.
"""

import multiprocessing
import resource
import selectors
import socket
import time

from tests.bench.scale_bus import sample_event
from txzserver.config.datatypes import WebSocketSettings
from txzserver.websocket.fanout import Subscriber
from txzserver.websocket.service import NotificationService

USERS = 20  # distinct token sets among the connections
SETTLE_SECONDS = 60


class SocketTransport:
    """A connected socket with the attributes of Twisted's TCP transport that the fan-out's
    direct sends read (``txzserver.websocket.sending``); a send the socket does not take
    whole is kept in ``queued`` (Twisted would buffer it)."""

    TLS = False
    connected = True
    disconnecting = False
    _writeDisconnected = False

    def __init__(self, sock):
        self.socket = sock
        self.dataBuffer = b""
        self._tempDataBuffer = []
        self.queued = 0

    def write(self, data):
        self.queued += len(data)


def _reader(port, count, ready, stop):
    """Open ``count`` connections to ``port`` and read everything sent on them until ``stop``."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    selector = selectors.DefaultSelector()
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        socks.append(sock)
    ready.set()
    while not stop.is_set():
        for key, _ in selector.select(0.2):
            try:
                key.fileobj.recv(1 << 16)
            except BlockingIOError:
                pass


def _accept(listener, count):
    deadline = time.monotonic() + SETTLE_SECONDS
    accepted = []
    while len(accepted) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(accepted)} of {count} connections arrived")
        sock, _ = listener.accept()
        sock.setblocking(False)
        accepted.append(sock)
    return accepted


def _open_protocol(service, transport):
    protocol = service.factory.protocol()
    protocol.factory = service.factory
    protocol.transport = transport
    protocol.state = protocol.STATE_OPEN
    return protocol


def _drained(transports):
    """Wait until the reader has taken everything sent (the socket send queues are empty)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        if all(_unsent(t.socket) == 0 for t in transports[:: max(1, len(transports) // 50)]):
            return
        time.sleep(0.01)


def _unsent(sock):
    import fcntl
    import struct
    import termios

    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def measure(connections, events):
    """CPU and wall seconds of ``events`` deliveries to ``connections`` subscribers."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    context = multiprocessing.get_context("fork")
    listener = socket.create_server(("127.0.0.1", 0), backlog=connections)
    ready, stop = context.Event(), context.Event()
    reader = context.Process(target=_reader, args=(listener.getsockname()[1], connections, ready, stop),
                             daemon=True)
    reader.start()
    service = NotificationService(None, None, WebSocketSettings(), "bench")
    socks = []
    try:
        socks = _accept(listener, connections)
        if not ready.wait(SETTLE_SECONDS):
            raise RuntimeError("the reader did not connect")
        transports = [SocketTransport(sock) for sock in socks]
        users = [frozenset({"Anonymous", "Member", f"user:u{i}"}) for i in range(USERS)]
        for index, transport in enumerate(transports):
            protocol = _open_protocol(service, transport)
            service.hub.add(Subscriber(users[index % USERS], ["/Plone"], protocol._send,
                                       userid=f"u{index % USERS}", site="/Plone"))
        event = sample_event()
        cpu = wall = 0.0
        delivered = 0
        for seq in range(1, events + 1):
            stamped = event.stamped("bench", "0123456789abcdef", seq)
            began_cpu, began = time.process_time(), time.perf_counter()
            delivered += service.hub.deliver(stamped)
            wall += time.perf_counter() - began
            cpu += time.process_time() - began_cpu
            _drained(transports)
        queued = sum(t.queued for t in transports)
    finally:
        stop.set()
        reader.join(30)
        if reader.is_alive():
            reader.kill()
        service.sending.close()
        for sock in socks:
            sock.close()
        listener.close()
    return {"connections": connections, "events": events, "delivered": delivered,
            "queued_bytes": queued, "cpu_s": round(cpu, 4), "wall_s": round(wall, 4),
            "cpu_per_event_per_subscriber_s": cpu / (events * connections),
            "wall_per_event_s": wall / events}
