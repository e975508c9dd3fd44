"""One accepted socket of an HTTP listener, from accept to close.

1. Accept. ``ZopeSite.buildProtocol`` (site.py) asks the process's ``ConnectionCounter``
   for room: below max-connections there is some; at the limit the counter names the
   ``Connection`` idle the longest, else the one whose request head has been arriving the
   longest, and ``Connection.evict`` closes it for the newcomer (logged and counted); when
   none qualifies the newcomer gets 503 (``site._Overloaded``). Otherwise the site makes a
   ``Connection`` and the ``NegotiatingProtocol`` (negotiate.py) that speaks on its transport.
2. Open. The protocol's ``makeConnection`` calls ``opened``: the connection holds a slot from
   here on. A TLS handshake must finish within header-timeout (negotiate.py).
3. Protocol choice. The negotiator builds an ``HTTP1Channel`` (http1.py) with this
   connection and hands it over (``speak``); ALPN "h2", the h2c preface or "Upgrade: h2c"
   replace it by an ``H2Channel`` (http2.py), built with the same connection. The metrics
   label (``protocol_name``) follows the channel in charge.
4. Activity. The channel in charge says when it starts reading a request head
   (``reading_head``), is busy answering (``went_busy``) or idle (``went_idle``: HTTP/1.1
   between requests, HTTP/2 without open streams): the counter keeps the idle and the
   head-reading connections in order, for step 1.
5. Publishing. Every request of the connection, HTTP/1.1 or any HTTP/2 stream, queues on the
   connection's one ``publish_queue`` (admission.py): at most publish-share of them are in
   the publisher pool at once (publisher.py).
6. Hand-off. A WebSocket handshake takes the transport (websocket/handoff.py): ``detach``
   gives the slot back (WebSockets have their own limit) and forgets the HTTP channel.
7. Close. ``closed`` (from the protocol's ``connectionLost``) gives the slot back once; an
   evicted connection gave it back when it was evicted.

Reactor thread only.
"""

from collections import Counter, OrderedDict

from twisted.internet.interfaces import INegotiated
from twisted.logger import Logger

from .admission import Admission, PublishQueue
from .errors import peer_of

log = Logger()


class ConnectionCounter:
    """Open connections of the whole process (all listeners share one limit), which of them
    are idle, and which are still reading a request head. At the limit the connection idle
    the longest makes room for a newcomer; when none is idle, the one whose head has been
    arriving the longest (a browser sends its head at once; slowloris clients and unfinished
    WebSocket handshakes trickle it).

    Every operation is O(1) (``by_protocol``, for a metrics scrape, is O(open)).
    """

    def __init__(self, limit):
        self.limit = limit
        self.open = 0
        self.evicted = 0  # closed to make room for a newcomer
        self.refused = 0  # newcomers answered 503: none could make room
        self._open = set()  # the Connections holding a slot
        self._idle = OrderedDict()  # connection -> None, in the order they went idle
        self._heads = OrderedDict()  # connection -> None, in the order their heads began

    def full(self):
        return self.open >= self.limit

    def opened(self, connection):
        self._open.add(connection)
        self.open += 1

    def closed(self, connection):
        self.went_busy(connection)
        self._open.discard(connection)
        self.open -= 1

    def by_protocol(self):
        """{("http/1.1",): n, ("h2c",): n, ...}: open connections by the protocol they speak."""
        return {(name,): n for name, n in Counter(c.protocol_name for c in self._open).items()}

    def went_idle(self, connection):
        self._heads.pop(connection, None)
        self._idle[connection] = None
        self._idle.move_to_end(connection)

    def reading_head(self, connection):
        self._idle.pop(connection, None)
        self._heads.setdefault(connection, None)

    def went_busy(self, connection):
        self._idle.pop(connection, None)
        self._heads.pop(connection, None)

    @property
    def idle(self):
        return len(self._idle)

    @property
    def reading_heads(self):
        return len(self._heads)

    def longest_idle(self):
        """The connection idle the longest (it leaves the idle list), or None."""
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


class Connection:
    """One accepted socket: its slot in the ``ConnectionCounter``, its activity, its eviction,
    its publish queue, and the channel (HTTP/1.1 or HTTP/2) in charge of it.

    Built by ``ZopeSite.buildProtocol`` with the site (resource, reactor, spool budget, access
    log), the process's ``ServerSettings``, the counter and the ``Admission`` totals; handed
    to every channel it makes, which reads the site and the reactor from it.
    """

    #: The channel in charge (None before the first and after a WebSocket hand-off).
    channel = None
    transport = None
    #: A TLS transport (h2 by ALPN) rather than cleartext (h2c).
    secure = False
    #: Holds a slot of the counter (until closed, evicted or handed to a WebSocket).
    counted = False

    def __init__(self, site, settings, counter, admission=None):
        self.site = site
        self.settings = settings
        self.reactor = site.reactor
        self.counter = counter
        self.protocol_name = "http/1.1"
        self.publish_queue = PublishQueue(settings.publish_share,
                                          admission if admission is not None else Admission())

    # The slot: from the protocol's makeConnection to its connectionLost

    def opened(self, transport):
        self.transport = transport
        self.secure = INegotiated.providedBy(transport)
        self.counter.opened(self)
        self.counted = True

    def closed(self):
        self._release_slot()
        self.channel = None

    def detach(self):
        """The connection became a WebSocket: it leaves this (HTTP) count now, and the HTTP
        channel is forgotten (no cycle left for the garbage collector).

        WebSocket connections have their own limit (<websocket> max-connections), so
        thousands of them do not lock HTTP clients out of max-connections.
        """
        self._release_slot()
        self.channel = None

    def speak(self, channel, name):
        """``channel`` is in charge from now on; ``name`` ("http/1.1", "h2", "h2c") labels
        the connection in the metrics."""
        self.channel = channel
        self.protocol_name = name

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
        """Close this idle (or head-reading) connection now; its slot is free at once.
        HTTP/2 says GOAWAY first, HTTP/1.1 answers 408 to a head it was reading."""
        log.info("closing idle connection from {peer} to make room for {newcomer}"
                 " ({n} open connections, max-connections)",
                 peer=peer_of(self.transport), newcomer=newcomer, n=self.counter.open)
        self.counter.evicted += 1
        self._release_slot()
        if self.channel is not None:
            self.channel.close_idle()

    def _release_slot(self):
        if self.counted:
            self.counted = False
            self.counter.closed(self)
        else:
            self.counter.went_busy(self)
