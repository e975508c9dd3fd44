"""The Twisted Site of one listener: protocol choice, the connection limit, the access log."""

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web import server

from .accesslog import log_request
from .errors import http1_error_response
from .negotiate import NegotiatingProtocol

log = Logger()


class ConnectionCounter:
    """Open connections of the whole process (all listeners share one limit)."""

    def __init__(self, limit):
        self.limit = limit
        self.open = 0

    def full(self):
        return self.open >= self.limit


class _Overloaded(Protocol):
    """Answers 503 to a connection beyond max-connections and closes it."""

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
        self.counter.open += 1
        self.counted = True
        super().makeConnection(transport)

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
            self.counter.open -= 1


class ZopeSite(server.Site):
    """Site for one listener, built with the process's ``ServerSettings``."""

    def __init__(self, resource, settings, counter, h2c=False, reactor=None):
        super().__init__(resource, timeout=settings.idle_timeout,
                         reactor=reactor)
        self.settings = settings
        self.counter = counter
        self.h2c = h2c

    def buildProtocol(self, addr):
        if self.counter.full():
            log.warn("refusing connection from {addr}: {n} open connections (max-connections)",
                     addr=getattr(addr, "host", addr), n=self.counter.open)
            protocol = _Overloaded()
            protocol.factory = self
            return protocol
        return CountedProtocol(self, self.settings, self.counter, h2c=self.h2c)

    def log(self, request):
        log_request(request, self.settings.access_log_format)
