"""HTTP/1.1 on llhttp (httptools): the framing in C, our limits and refusals, lean requests.

Twisted's HTTPChannel parses a request line by line in Python (LineReceiver), builds a
``Request`` with two ``Headers`` and encodes every field again on the way out: most of the
reactor's ~176 µs per small request. Here llhttp frames the header fields and the body
(Content-Length, chunked) and ``leanrequest.LeanRequest`` carries what the publisher needs.

This module is the connection's side (answering in order, refusals, timers, hand-offs);
``llhttp1parse.Framing`` the reading of the bytes.
"""

from collections import deque

import httptools
from twisted.internet import tcp
from twisted.internet.interfaces import IProtocol, ISSLTransport
from twisted.logger import Logger
from zope.interface import implementer

from .errors import HTTP1Refusals, peer_of
from .http1 import HOP_BY_HOP, h2c_upgrade_offer
from .llhttp1parse import CONTINUE, LINE, FIELDS, STOPPED, Framing

log = Logger()

#: Seconds a closing connection may take to flush before it is aborted (Twisted's abortTimeout).
ABORT_TIMEOUT = 15


@implementer(IProtocol)
class LLHTTP1Channel(HTTP1Refusals, Framing):
    """One HTTP/1.1 connection, limited by the ``ServerSettings`` it is built with.

    Same contract as ``http1.HTTP1Channel``: its ``connection`` (None for a channel alone in
    a test) gives the site and the reactor and is told when it reads a head, is busy or
    idle; ``on_h2c_upgrade(http2_settings, headers, rest)`` when the listener speaks h2c.
    Pipelined requests are answered one after the other, in order; while one is answered
    and another waits, the socket is not read.
    """

    transport = None
    connected = False
    #: Set once an error response is sent (or owed): what the client sends is ignored.
    rejected = False
    #: Kept for the WebSocket hand-off, which empties it (this channel keeps its own).
    requests = ()

    def __init__(self, settings, connection=None, on_h2c_upgrade=None):
        self.settings = settings
        self.connection = connection
        self.on_h2c_upgrade = on_h2c_upgrade
        self.site = connection.site if connection is not None else None
        self.reactor = connection.reactor if connection is not None else None
        self._parser = httptools.HttpRequestParser(self)
        self._state = LINE
        self._partial = b""
        self._incoming = None   # the request whose head or body is being read
        self._active = None     # the request being answered
        self._ready = deque()   # complete requests waiting for it
        self._refusal = None    # (code, reason, headers) raised out of the parser, or owed
        self._head_started = self._head_piece = False
        self._head_timer = self._idle_timer = self._abort_timer = None
        self._head_deadline = None  # reactor seconds by which the head must be complete
        self._reading_paused = False
        self._dispatching = False
        self._host = self._peer = None
        self._last_data = 0.0

    # IProtocol

    def makeConnection(self, transport):
        self.transport = transport
        self.connected = True
        self.connectionMade()

    def connectionMade(self):
        if self.reactor is None:  # a channel built alone (tests)
            from twisted.internet import reactor
            self.reactor = reactor
        self._last_data = self.reactor.seconds()
        self._idle_timer = self.reactor.callLater(self.settings.idle_timeout, self._idle_check)
        # Counted from the opening: a client that connects and sends nothing is cut too.
        self._start_head_timer()
        if self.connection is not None:
            self.connection.went_idle()

    def dataReceived(self, data):
        if self._state is STOPPED:
            return
        self._last_data = self.reactor.seconds()
        if self._partial:
            data, self._partial = self._partial + data, b""
        self._feed(data)

    def connectionLost(self, reason):
        self.connected = False
        self._state = STOPPED
        self._cancel_head_timer()
        self._cancel(self._idle_timer)
        self._cancel(self._abort_timer)
        self._idle_timer = self._abort_timer = None
        requests = [r for r in (self._incoming, self._active, *self._ready) if r is not None]
        self._forget()
        for request in requests:
            if not request.finished:
                request.connectionLost(reason)

    # Addresses (asked of the socket once per connection)

    def getHost(self):
        if self._host is None:
            self._host = self.transport.getHost()
        return self._host

    def getPeer(self):
        if self._peer is None:
            self._peer = self.transport.getPeer()
        return self._peer

    @property
    def secure(self):
        if self.connection is not None:
            return self.connection.secure
        return ISSLTransport.providedBy(self.transport)

    # Answering, one request after the other

    def _dispatch(self, rest, upgrade=True):
        """Answer the waiting requests in order while none is being answered; True when the
        connection was handed over (h2c, WebSocket) and ``rest`` is no longer ours. An h2c
        upgrade only when the bytes after the request (``rest``) are not parsed yet."""
        self._dispatching = True
        try:
            while self._ready and self._active is None:
                request = self._ready.popleft()
                if (upgrade and self.on_h2c_upgrade is not None and request.clientproto
                        == b"HTTP/1.1" and b"upgrade" in request.requestHeaders.fields):
                    offer = h2c_upgrade_offer(request)
                    if offer is not None:
                        self._upgrade_to_h2c(request, offer, rest)
                        return True
                self._active = request
                request.process()
                if self.transport is None:
                    return True  # a WebSocket took the connection
        finally:
            self._dispatching = False
        return False

    def write(self, data):
        self.transport.write(data)

    def request_done(self, request):
        """``request``'s response is complete: the next one, or idle, or close."""
        if self._active is request:
            self._active = None
        if self.transport is None:
            return
        if not request.persistent:
            self.loseConnection()
            return
        if self._ready:
            if not self._dispatching:
                self._dispatch(b"", upgrade=False)
            return
        if self._refusal is not None:  # owed after the requests before it
            code, reason, headers = self._refusal
            self._refusal = None
            self._send_error(code, reason, headers)
        if self.rejected:
            self.loseConnection()
            return
        self._last_data = self.reactor.seconds()  # the idle timeout counts from here
        if self._idle_timer is None:
            self._idle_timer = self.reactor.callLater(self.settings.idle_timeout, self._idle_check)
        incoming = self._incoming
        if incoming is not None and incoming.continue_owed:
            incoming.continue_owed = False
            self.transport.write(CONTINUE)
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()
        if self._state is LINE and self._partial:
            self._request_started()
        elif self._state is FIELDS:
            self._request_started()
        elif self._state is LINE and self.connection is not None:
            self.connection.went_idle()

    # Refusals and closing

    def reject_request(self, request, code, reason, headers=()):
        """Answer ``code`` with ``reason`` and close: we cannot know where the next request starts."""
        self.reject(code, reason, headers)

    def reject(self, code, reason, headers=()):
        if self.rejected:
            return
        self._state = STOPPED
        if self._active is not None or self._ready:  # answers owed first, in order
            self.rejected = True
            self._refusal = (code, reason, headers)
            return
        self._send_error(code, reason, headers)
        self.loseConnection()

    def loseConnection(self):
        """Close once the response is flushed; abort if the client does not take it."""
        self._state = STOPPED
        transport = self.transport
        if transport is None:
            return
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()  # a request's producer: the close waits for none
        transport.loseConnection()
        if self._abort_timer is None and self.connected:
            self._abort_timer = self.reactor.callLater(ABORT_TIMEOUT, self._abort)

    def _abort(self):
        self._abort_timer = None
        if self.transport is not None:
            self.transport.abortConnection()

    def close_idle(self):
        """Close this connection, idle between requests; one reading a request head is told
        so (408). Called by ``Connection.evict``."""
        if self._head_started and self._head_deadline is not None:
            self.reject(408, "request head still incomplete: the connection was closed to make"
                             " room for another (max-connections)")
            return
        self.rejected = True
        self._stop_head_timer()
        self.loseConnection()

    # Timers: header-timeout for a head, idle-timeout between requests and within a body

    def _request_started(self):
        self._head_started = True
        self._start_head_timer()
        if self.connection is not None:
            self.connection.reading_head()

    # The head's deadline is kept here and the timer only checks it when it runs: a
    # DelayedCall scheduled and cancelled per request cost more than the rest of the timing.

    def _start_head_timer(self):
        if self._head_deadline is None:
            self._head_deadline = self.reactor.seconds() + self.settings.header_timeout
        if self._head_timer is None:
            self._head_timer = self.reactor.callLater(self.settings.header_timeout,
                                                      self._head_check)

    def _stop_head_timer(self):
        self._head_deadline = None

    def _cancel_head_timer(self):
        self._head_deadline = None
        self._cancel(self._head_timer)
        self._head_timer = None

    def _head_check(self):
        self._head_timer = None
        if self._head_deadline is None:
            return
        left = self._head_deadline - self.reactor.seconds()
        if left > 0:
            self._head_timer = self.reactor.callLater(left, self._head_check)
            return
        self._head_deadline = None
        self.reject(408, f"request line and headers not received within"
                         f" {self.settings.header_timeout:g} seconds (header-timeout)")

    def _idle_check(self):
        """Runs idle-timeout after the last data; suspended while a request is answered."""
        self._idle_timer = None
        if self._active is not None or self._ready:
            return  # request_done starts it again
        left = self._last_data + self.settings.idle_timeout - self.reactor.seconds()
        if left > 0:
            self._idle_timer = self.reactor.callLater(left, self._idle_check)
            return
        if self.rejected or self._state is STOPPED:
            self._abort()
            return
        if self._incoming is not None:  # in the middle of a body (RFC 9110 15.5.9)
            self._send_body_timeout()
        log.info("closing idle connection from {peer} (idle-timeout)", peer=peer_of(self.transport))
        self.rejected = True
        self.loseConnection()

    @staticmethod
    def _cancel(call):
        if call is not None and call.active():
            call.cancel()

    # Hand-offs (to HTTP/2 after h2c, to a WebSocket protocol), os.sendfile loans

    def _upgrade_to_h2c(self, request, offer, rest):
        """Hand ``request`` (as HTTP/2 headers) and the bytes after it to ``on_h2c_upgrade``."""
        headers = [(b":method", request.method), (b":scheme", b"http"), (b":path", request.uri),
                   (b":authority", request.getHeader(b"host") or b"")]
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name not in HOP_BY_HOP:
                headers.extend((name, value) for value in values)
        self.on_h2c_upgrade(offer, headers, rest)

    def release_transport(self):
        """Stop the timers and stop reading for good; return the transport, with which the
        protocol taking over registers as producer (this channel never registers)."""
        self._state = STOPPED
        self._cancel_head_timer()
        self._cancel(self._idle_timer)
        self._idle_timer = None
        transport = self.transport
        self._forget()
        return transport

    def _forget(self):
        """Drop the requests and the parser (which refers back to this channel): no cycle
        is left for the garbage collector."""
        self._incoming = self._active = None
        self._ready.clear()
        self._parser = None

    def lend_plain_transport(self):
        """The plain TCP transport, lent to a producer that writes the rest of the response
        with os.sendfile; None over TLS. Nothing else writes meanwhile: the channel reads no
        further request until this response is complete."""
        transport = self.transport
        if not isinstance(transport, tcp.Connection) or ISSLTransport.providedBy(transport):
            return None
        return transport

    def take_back_transport(self):
        """The borrower is done (it unregistered itself from the transport)."""
