"""The Twisted Site of one listener: a ``Connection`` per accepted socket (connection.py)
within the connection limit, the access log and the request metrics (both written when a
response is finished)."""

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web import server

from .accesslog import AccessLog, request_protocol
from .admission import Admission
from .connection import Connection
from .errors import http1_error_response
from .negotiate import NegotiatingProtocol
from .spool import SpoolBudget

log = Logger()


class _Overloaded(Protocol):
    """Answers 503 to a connection beyond max-connections, none being idle, and closes it."""

    def connectionMade(self):
        self.transport.write(http1_error_response(
            503, "too many open connections (max-connections); try again later"))
        self.transport.loseConnection()


class ZopeSite(server.Site):
    """Site for one listener, built with the process's ``ServerSettings``; ``metrics`` (a
    ``txzserver.metrics.ServerMetrics``, or None) counts the requests it answers; ``spool``
    the process's ``SpoolBudget``; ``admission`` the ``Admission`` totals of every
    connection's publish queue (all three shared by every listener of the process)."""

    def __init__(self, resource, settings, counter, h2c=False, http2=True, reactor=None,
                 metrics=None, spool=None, admission=None):
        super().__init__(resource, reactor=reactor)
        self.settings = settings
        #: the process's ``ConnectionCounter`` (max-connections over every listener)
        self.counter = counter
        self.admission = admission if admission is not None else Admission()
        #: bytes of request bodies spooled at once (shared by every listener of the process)
        self.spool = spool if spool is not None else SpoolBudget(settings.max_spool_size)
        self.metrics = metrics
        self.h2c = h2c
        self.http2 = http2
        self.access_log = AccessLog(self.reactor, settings.access_log_format,
                                    structured=settings.log_format == "json")

    @property
    def websocket(self):
        """The WebSocket service of this listener's resource, or None (HTTP/2 connections
        offer extended CONNECT only with one)."""
        return getattr(self.resource, "websocket", None)

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
        connection = Connection(self, self.settings, self.counter, self.admission)
        return NegotiatingProtocol(connection, h2c=self.h2c)

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
