"""The Twisted Site of one listener: protocol choice, the connection limit, the access log
and the request metrics (both written when a response is finished)."""

from collections import Counter, OrderedDict

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web import server

from .accesslog import AccessLog, request_protocol
from .errors import http1_error_response, peer_of
from .negotiate import NegotiatingProtocol
from .spool import SpoolBudget

log = Logger()


class ConnectionCounter:
    """Open connections of the whole process (all listeners share one limit), which of them
    are idle, and which are still reading a request head. At the limit the connection idle
    the longest makes room for a newcomer; when none is idle, the one whose head has been
    arriving the longest (a browser sends its head at once; slowloris clients and unfinished
    WebSocket handshakes trickle it).

    Every operation is O(1) (``by_protocol``, for a metrics scrape, is O(open)). Reactor
    thread only.
    """

    def __init__(self, limit):
        self.limit = limit
        self.open = 0
        self.evicted = 0  # closed to make room for a newcomer
        self.refused = 0  # newcomers answered 503: none could make room
        self._open = set()  # the CountedProtocols holding a slot
        self._idle = OrderedDict()  # protocol -> None, in the order they went idle
        self._heads = OrderedDict()  # protocol -> None, in the order their heads began

    def full(self):
        return self.open >= self.limit

    def opened(self, protocol):
        self._open.add(protocol)
        self.open += 1

    def closed(self, protocol):
        self.went_busy(protocol)
        self._open.discard(protocol)
        self.open -= 1

    def by_protocol(self):
        """{("http/1.1",): n, ("h2c",): n, ...}: open connections by the protocol they speak."""
        return {(name,): n for name, n in Counter(p.protocol_name for p in self._open).items()}

    def went_idle(self, protocol):
        self._heads.pop(protocol, None)
        self._idle[protocol] = None
        self._idle.move_to_end(protocol)

    def reading_head(self, protocol):
        self._idle.pop(protocol, None)
        self._heads.setdefault(protocol, None)

    def went_busy(self, protocol):
        self._idle.pop(protocol, None)
        self._heads.pop(protocol, None)

    @property
    def idle(self):
        return len(self._idle)

    @property
    def reading_heads(self):
        return len(self._heads)

    def longest_idle(self):
        """The protocol idle the longest (it leaves the idle list), or None."""
        if not self._idle:
            return None
        return self._idle.popitem(last=False)[0]

    def evictable(self):
        """The connection to close for a newcomer (it leaves the lists), or None."""
        if self._idle:
            return self._idle.popitem(last=False)[0]
        if self._heads:
            return self._heads.popitem(last=False)[0]
        return None


class _Overloaded(Protocol):
    """Answers 503 to a connection beyond max-connections, none being idle, and closes it."""

    def connectionMade(self):
        self.transport.write(http1_error_response(
            503, "too many open connections (max-connections); try again later"))
        self.transport.loseConnection()


class CountedProtocol(NegotiatingProtocol):
    """A connection that holds one slot of the process-wide ``ConnectionCounter``."""

    def __init__(self, site, settings, counter, h2c=False):
        super().__init__(site, settings, h2c)
        self.counter = counter
        self.counted = False

    def makeConnection(self, transport):
        self.counter.opened(self)
        self.counted = True
        super().makeConnection(transport)

    # Activity, reported by the channel in charge

    def went_idle(self):
        if self.counted:
            self.counter.went_idle(self)

    def went_busy(self):
        self.counter.went_busy(self)

    def reading_head(self):
        if self.counted:
            self.counter.reading_head(self)

    def evict(self, newcomer):
        """Close this idle (or head-reading) connection now; its slot is free at once."""
        log.info("closing idle connection from {peer} to make room for {newcomer}"
                 " ({n} open connections, max-connections)",
                 peer=peer_of(self.transport), newcomer=newcomer, n=self.counter.open)
        self.counter.evicted += 1
        self._release_slot()
        self.close_idle()

    def connectionLost(self, reason):
        self._release_slot()
        super().connectionLost(reason)

    def detach(self):
        """The connection became a WebSocket: it leaves this (HTTP) count now.

        WebSocket connections have their own limit (<websocket> max-connections), so
        thousands of them do not lock HTTP clients out of max-connections.
        """
        super().detach()
        self._release_slot()

    def _release_slot(self):
        if self.counted:
            self.counted = False
            self.counter.closed(self)
        else:
            self.counter.went_busy(self)


class ZopeSite(server.Site):
    """Site for one listener, built with the process's ``ServerSettings``; ``metrics`` (a
    ``txzserver.metrics.ServerMetrics``, or None) counts the requests it answers; ``spool``
    the process's ``SpoolBudget``."""

    def __init__(self, resource, settings, counter, h2c=False, http2=True, reactor=None,
                 metrics=None, spool=None):
        super().__init__(resource, reactor=reactor)
        self.settings = settings
        self.counter = counter
        #: bytes of request bodies spooled at once (shared by every listener of the process)
        self.spool = spool if spool is not None else SpoolBudget(settings.max_spool_size)
        self.metrics = metrics
        self.h2c = h2c
        self.http2 = http2
        self.access_log = AccessLog(self.reactor, settings.access_log_format,
                                    structured=settings.log_format == "json")

    # IProtocolNegotiationFactory

    def acceptableProtocols(self):
        """What TLS offers by ALPN: Twisted adds this to the listener's list, so a listener
        with ``http2 off`` must not offer h2 here either."""
        return [b"h2", b"http/1.1"] if self.http2 else [b"http/1.1"]

    def buildProtocol(self, addr):
        if self.counter.full():
            newcomer = _host_port(addr)
            idle = self.counter.evictable()
            if idle is None:
                log.warn("refusing connection from {addr}: {n} open connections, none idle"
                         " or reading a request head (max-connections)", addr=newcomer,
                         n=self.counter.open)
                self.counter.refused += 1
                protocol = _Overloaded()
                protocol.factory = self
                return protocol
            idle.evict(newcomer)
        return CountedProtocol(self, self.settings, self.counter, h2c=self.h2c)

    def log(self, request):
        """Twisted's hook, called once per finished response: the access line and the metrics."""
        protocol = request_protocol(request)
        duration = request.duration() if hasattr(request, "duration") else None
        if self.metrics is not None:
            self.metrics.request_done(protocol, request.code, duration or 0.0, request.sentLength,
                                      getattr(request, "spooled", 0))
        self.access_log.add(request, duration, protocol)


def _host_port(addr):
    host, port = getattr(addr, "host", None), getattr(addr, "port", None)
    return f"{host}:{port}" if host is not None else str(addr)
