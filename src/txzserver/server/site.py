"""The Twisted Site of one listener: protocol choice, connection limit, access log."""

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web import server

from .accesslog import log_request
from .channel import NegotiatingChannel
from .rejection import http1_error_response
from .request import ZopeRequest

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


class CountedChannel(NegotiatingChannel):
    counter = None

    def makeConnection(self, transport):
        self.counter.open += 1
        super().makeConnection(transport)

    def connectionLost(self, reason):
        self.counter.open -= 1
        super().connectionLost(reason)

    def detach(self):
        """The connection became a WebSocket: it leaves this (HTTP) count now.

        WebSocket connections have their own limit (<websocket> max-connections), so
        thousands of them do not lock HTTP clients out of max-connections.
        """
        super().detach()
        self.counter.open -= 1
        self.counter = ConnectionCounter(0)  # nothing left to count for this connection
        return lambda: None


class ZopeSite(server.Site):
    """Site for one listener; ``settings`` is the ServerSettings of the process."""

    requestFactory = ZopeRequest

    def __init__(self, resource, settings, counter, h2c=False, reactor=None):
        super().__init__(resource, requestFactory=ZopeRequest, timeout=settings.idle_timeout,
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
        channel = CountedChannel()
        channel.counter = self.counter
        channel.factory = self
        channel.site = self
        channel.requestFactory = self.requestFactory
        channel.timeOut = self.timeOut
        channel.callLater = self.reactor.callLater
        channel.h2c = self.h2c
        channel.maxHeaders = self.settings.max_headers
        channel.totalHeadersSize = self.settings.max_header_size
        return channel

    def log(self, request):
        log_request(request, self.settings.access_log_format)
