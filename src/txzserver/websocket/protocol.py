"""The Autobahn protocol of one browser (or script) connection.

Client to server: {"action": "subscribe"|"unsubscribe", "path": "/Plone/news"}; answered
with {"type": "status", ...} or {"type": "error", "message": ...}. Server to client: a
{"type": "welcome", ...} after the handshake, then events (see txzserver.bus.Event), and
{"type": "gap", "instance", "missed"} before the next event when some were lost (fanout.Hub).

A connection belongs to the site it authenticated against (its tokens are that site's roles
and groups): a subscription outside that site is refused with an error message, and a
``?path=`` outside it with 403 before the 101 (service.handle checks the site the URL names,
``_accepted`` the one Zope answered for).
"""

import json
import random
from types import FunctionType

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..transfer import PauseObserver
from .auth import AuthenticationFailed
from .fanout import REAUTHENTICATE, Subscriber, normalize_path, path_matches
from .principals import Gone, credentials_key

log = Logger()
MAX_SUBSCRIPTIONS = 64
#: A client whose socket is full (its transport paused us) is cut off once this much was
#: queued for it since, or once it has not drained for MAX_STALL_SECONDS while events flow.
#: A burst (one bulk commit: a thousand events in one reactor turn) fits in the bytes and is
#: drained in well under the time by a client that reads; a client that stopped reading costs
#: at most this much memory.
MAX_BACKLOG_BYTES = 1024 * 1024
MAX_STALL_SECONDS = 10.0
#: A handshake whose principal lookup waits longer than this is answered 503 (Retry-After).
#: Autobahn's own openHandshakeTimeout is off: the request has fully arrived at the hand-off,
#: only a lookup can make a handshake wait, and a timer per handshake (most answered from the
#: cache at once) is a tenth of a handshake's CPU.
OPEN_HANDSHAKE_TIMEOUT = 10.0
#: Seconds a client refused that way is asked to wait before it connects again.
RETRY_AFTER = 5


class NotificationProtocol(WebSocketServerProtocol):
    """One connection; ``handshake`` (environ, site id, first path) is set at hand-off."""

    handshake = None
    principal = None
    subscriber = None
    #: seconds this connection may live (max-connection-age); 0: no limit
    max_connection_age = 0.0
    _age_call = None

    # Handshake (reactor thread; a principal not in the cache is looked up in the pool)

    def onConnect(self, request):
        service = self.factory.service
        reason = service.check_origin(request.headers.get("origin"), self.handshake)
        if reason:
            raise ConnectionDeny(403, reason)
        if service.full():
            raise ConnectionDeny(503, "too many WebSocket connections (max-connections)")
        found = service.principals.lookup(self.handshake["environ"], self.handshake["site"],
                                          self._still_connecting)
        if not isinstance(found, Deferred):
            return self._accepted(found)  # from the cache: no Zope, no thread
        self._lookup_timeout = service.reactor.callLater(OPEN_HANDSHAKE_TIMEOUT,
                                                         self._lookup_too_slow)
        found.addBoth(self._lookup_done)
        found.addCallbacks(self._accepted, self._refused)
        return found

    _lookup_timeout = None

    def _lookup_done(self, result):
        if self._lookup_timeout is not None and self._lookup_timeout.active():
            self._lookup_timeout.cancel()
        self._lookup_timeout = None
        return result

    def _lookup_too_slow(self):
        """Answer 503, not a dropped connection: a reverse proxy retries a request that got no
        answer at all (HAProxy's ``retry-on empty-response``, on the next instance), so a client
        behind it waited for every retry's timeout in turn (40 s through the compose front)
        and never learned why; an answer ends the handshake once and says so."""
        self._lookup_timeout = None
        if self.state == self.STATE_CONNECTING:
            self.failHandshake(f"principal lookup waited over {OPEN_HANDSHAKE_TIMEOUT:.0f} s", 503,
                               [("Retry-After", str(RETRY_AFTER)), ("Content-Length", "0")])

    def _still_connecting(self):
        """A handshake can wait for its lookup longer than its client stays (or than
        openHandshakeTimeout): Zope is not asked for connections gone."""
        return self.state != self.STATE_CLOSED

    def _accepted(self, principal):
        first = self.handshake["path"]
        if first and not path_matches(principal.site_path, first):
            if self.state == self.STATE_CLOSED:
                return None  # nobody left to answer
            raise ConnectionDeny(403, f"path {first} is outside this connection's site"
                                      f" {principal.site_path}")
        self.principal = principal
        return None, {"X-Txzserver-Instance": self.factory.service.instance_name}

    def _refused(self, failure):
        if failure.check(Gone):
            return None  # succeedHandshake below does nothing for a closed connection
        if failure.check(AuthenticationFailed):
            deny = ConnectionDeny(failure.value.code, failure.value.reason)
        else:
            log.failure("WebSocket principal lookup failed", failure)
            deny = ConnectionDeny(500, "principal lookup failed")
        if self.state == self.STATE_CLOSED:
            return None  # nobody left to answer
        raise deny

    def succeedHandshake(self, res):
        # Autobahn opens the connection whatever its state: one dropped while its principal was
        # looked up (client gone, open-handshake timeout) would enter the hub and stay there.
        if self.state != self.STATE_CONNECTING:
            return None
        # The 101 answer and the welcome are one write (one segment for the client) instead of
        # Autobahn's write, then a frame built and written per connection. Twisted's buffered
        # write, not sending.write_now: sending each at once wakes the client per handshake
        # in the middle of the reactor's turn, and 10,000 connects took longer (5 pairs of
        # runs, medians 4.4 s against 4.2 s). The cork ends with onOpen (or here without it).
        self._corked = []
        try:
            return super().succeedHandshake(res)
        finally:
            self._uncork()

    _corked = None

    def sendData(self, data, sync=False, chopsize=None):
        if self._corked is not None and not sync and not chopsize:
            self._corked.append(data)
            return
        super().sendData(data, sync=sync, chopsize=chopsize)

    def _uncork(self):
        corked, self._corked = self._corked, None
        if corked and self.transport is not None:
            self.transport.write(b"".join(corked))

    def onOpen(self):
        try:
            self._open()
        finally:
            self._uncork()

    def _open(self):
        self.reader = PauseObserver(clock=self.factory.service.reactor.seconds)
        self.transport.registerProducer(self.reader, True)
        service = self.factory.service
        site = self.principal.site_path
        path = self.handshake["path"] or site
        environ, site_id = self.handshake["environ"], self.handshake["site"]
        # kept (one copy per cache key) to look the principal up again after lost messages
        key = credentials_key(environ, site_id, service.principals.extra)
        credentials = service.hub.credentials(key, environ, site_id)
        self.subscriber = Subscriber(self.principal.tokens, [path], self._send,
                                     userid=self.principal.userid, close=self._close_for,
                                     site=site, credentials=credentials)
        self._forget_handshake()
        if self.max_connection_age:
            # up to a tenth earlier, at random: connections opened together (after a restart)
            # do not all reconnect in the same second an hour later
            age = self.max_connection_age * (1 - random.random() / 10)
            self._age_call = service.reactor.callLater(age, self._too_old, age)
        service.hub.add(self.subscriber)
        self._send(service.welcome(self.subscriber.userid, sorted(self.subscriber.paths), site))

    # Messages

    def onMessage(self, payload, isBinary):
        if isBinary:
            return self._error("binary messages are not supported; send JSON text")
        try:
            message = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._error("message is not JSON")
        if not isinstance(message, dict):
            return self._error("message must be a JSON object")
        action = message.get("action")
        if action not in ("subscribe", "unsubscribe"):
            return self._error(f"unknown action {action!r}; use subscribe or unsubscribe")
        try:
            path = normalize_path(message.get("path"))
        except ValueError as exc:
            return self._error(str(exc))
        paths = self.subscriber.paths
        if action == "subscribe":
            outside = self.subscriber.outside(path)
            if outside:
                return self._error(outside)
            if path not in paths and len(paths) >= MAX_SUBSCRIPTIONS:
                return self._error(f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
            paths.add(path)
        else:
            paths.discard(path)
        self._reply({"type": "status", "action": action, "path": path, "subscriptions": sorted(paths)})

    # Closing

    def onClose(self, wasClean, code, reason):
        if getattr(self, "reader", None) is not None and self.transport is not None:
            self.transport.unregisterProducer()
            self.reader = None
        if self.subscriber is not None:
            self.factory.service.hub.remove(self.subscriber)
            self.subscriber = None

    _abort_call = None

    def dropConnection(self, abort=False):
        # Autobahn resets (abort) the TCP connection once a closing handshake it started is
        # answered. When the answer arrives before the client read our close frame (a close
        # frame that is itself the protocol error, or both sides closing at once), the reset
        # discards that frame in the client's kernel and it never learns the close code.
        # RFC 6455 7.1.1: the server closes TCP first, so close it cleanly, and abort only a
        # client that does not read even that within closeHandshakeTimeout.
        if abort and self.wasClean and self.state == self.STATE_CLOSING and self.transport is not None:
            abort = False
            self._abort_call = self.factory.service.reactor.callLater(
                self.closeHandshakeTimeout, self.transport.abortConnection)
        super().dropConnection(abort=abort)

    def connectionLost(self, reason):
        if self._age_call is not None and self._age_call.active():
            self._age_call.cancel()
        self._age_call = None
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        self._lookup_done(None)
        super().connectionLost(reason)

    # Memory: what an idle connection keeps

    #: Autobahn's copies of the opening handshake, not read after it: an idle connection holds
    #: only its transport, this protocol, its subscriber and what they need.
    _HANDSHAKE_LEFTOVERS = ("http_request_data", "http_headers", "http_request_uri",
                            "http_request_path", "http_request_params", "http_request_host",
                            "http_status_line", "websocket_extensions", "websocket_origin",
                            "websocket_protocols", "_onConnect")

    def _forget_handshake(self):
        """The handshake's environ (with its credentials) and Autobahn's request copies."""
        self.handshake = None
        self.principal = None
        for name in self._HANDSHAKE_LEFTOVERS:
            if name in self.__dict__:
                self.__dict__[name] = None

    # Helpers

    def _too_old(self, age):
        """max-connection-age: the client comes back through a new, authenticated handshake."""
        self._age_call = None
        if self.state == self.STATE_OPEN:
            self.sendClose(code=REAUTHENTICATE, reason=f"connection open for {age:.0f} s"
                           " (max-connection-age): reconnect to authenticate again")

    def _close_for(self, code, reason):
        """The hub's ``Subscriber.close``: its user was removed, logged out, got a new
        password, or its credentials name someone else now."""
        if self.state == self.STATE_OPEN:
            self.sendClose(code=code, reason=reason)

    def _send(self, payload):
        if self.state != self.STATE_OPEN:
            return  # closing: still in the hub until the socket closes; sendMessage would raise
        if self._corked is not None:  # the welcome: written with the 101 (succeedHandshake)
            self._corked.append(self.factory.service.frame(payload))
            return
        reader = getattr(self, "reader", None)
        if reader is not None and reader.paused:
            reader.wrote_while_paused(len(payload))
            if reader.backlog_bytes > MAX_BACKLOG_BYTES or reader.paused_for() > MAX_STALL_SECONDS:
                log.info("closing a WebSocket that stopped reading ({n} events, {size} bytes"
                         " pending for {seconds:.1f} s)", n=reader.backlog,
                         size=reader.backlog_bytes, seconds=reader.paused_for())
                self.dropConnection(abort=True)
                return
        # One frame per event, built once for every connection (Autobahn's prepared message:
        # no compression is negotiated here, so every connection sends the same bytes), sent
        # at once (sending.Batch); max-message-size is for what clients send, not this.
        self.factory.service.sending.write(self.transport, self.factory.service.frame(payload))

    def _reply(self, message):
        self._send(json.dumps(message).encode("utf-8"))

    def _error(self, text):
        self._reply({"type": "error", "message": text})


def make_factory(service, settings):
    """Autobahn factory with the configured limits.

    Autobahn copies its ~40 options from the factory onto every new connection and
    pretty-prints them for a debug log line, whatever the log level: a quarter of a handshake's
    CPU, and 40 entries in every connection's ``__dict__``. The protocol class is made per
    factory instead, with the options as class attributes and nothing left to copy.
    """
    factory = WebSocketServerFactory()
    factory.service = service
    factory.setProtocolOptions(
        maxMessagePayloadSize=settings.max_message_size,
        maxFramePayloadSize=settings.max_message_size,
        autoPingInterval=settings.ping_interval,
        autoPingTimeout=settings.ping_timeout if settings.ping_interval else 0,
        openHandshakeTimeout=0,  # OPEN_HANDSHAKE_TIMEOUT, only while a lookup waits
        closeHandshakeTimeout=5,
        failByDrop=False,  # send the close code (1009 for a too large message) before closing
    )
    options = {name: getattr(factory, name) for name in NotificationProtocol.CONFIG_ATTRS}
    # functions among them (perMessageCompressionAccept) must not become methods
    options = {name: staticmethod(value) if isinstance(value, FunctionType) else value
               for name, value in options.items()}
    factory.protocol = type("NotificationProtocol", (NotificationProtocol,),
                            dict(options, CONFIG_ATTRS=(), __module__=__name__,
                                 max_connection_age=settings.max_connection_age))
    return factory
