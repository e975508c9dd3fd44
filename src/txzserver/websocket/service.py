"""The WebSocket endpoint of a process: which requests are handshakes, and the hand-off;
the collector's full passes put off while handshakes pour in (``CollectorPacing``)."""

import gc
import json
from urllib.parse import parse_qs

from twisted.logger import Logger
from twisted.web import server

from .fanout import Hub, normalize_path, path_matches
from .handoff import hand_off, is_websocket_upgrade
from .principals import PrincipalCache, PrincipalLookups
from .protocol import make_factory
from .sending import Batch

log = Logger()
H2_UPGRADE = ("this is a WebSocket endpoint: over HTTP/2 or HTTP/3 open it with an extended"
              " CONNECT (RFC 8441, RFC 9220), or send a WebSocket upgrade over HTTP/1.1")
#: Welcome messages kept (distinct users and first subscriptions; all are dropped when full).
WELCOMES_KEPT = 1024


class NotificationService:
    """Shared by every listener: the hub, the principal lookups, the Autobahn factory, the limits.

    Principal lookups go to the pool in at most ``lanes`` batches at once (half the pool's
    threads, at least one): the others stay free for page requests during a reconnect storm.
    """

    def __init__(self, reactor, pool, settings, instance_name, hub=None, lanes=None):
        self.reactor = reactor
        self.settings = settings
        self.instance_name = instance_name
        self.hub = hub if hub is not None else Hub()
        self.cache = PrincipalCache(settings.principal_cache_ttl, settings.principal_cache_size)
        if lanes is None:
            lanes = max(1, getattr(pool, "max", 2) // 2)
        self.principals = PrincipalLookups(reactor, pool, self.cache, lanes=lanes,
                                           headers=settings.principal_cache_headers)
        self.hub.principal_listeners.append(self.principals.forget)
        self.hub.lookup = self.principals.lookup  # principals looked up again after a bus gap
        self.sending = self.hub.batch = Batch()
        self.factory = make_factory(self, settings)
        self.open = 0
        self._prepared = ((None, None), (None, None))  # the last two (payload, frame)
        self._welcomes = {}
        self.pacing = CollectorPacing(reactor)

    @property
    def pool(self):
        return self.principals.pool

    @pool.setter
    def pool(self, pool):
        self.principals.pool = pool

    @property
    def app(self):
        return self.principals.app

    @app.setter
    def app(self, app):
        self.principals.app = app

    def frame(self, payload):
        """The WebSocket text frame of ``payload`` (Autobahn's prepared message), made once for
        the connections the hub hands the same payload object to in one delivery (two are
        kept: an event goes out with and without its actor, to connections in any order)."""
        for last, frame in self._prepared:
            if last is payload:
                return frame
        frame = self.factory.prepareMessage(payload).payloadHybi
        self._prepared = ((payload, frame), self._prepared[0])
        return frame

    def welcome(self, userid, subscriptions, site):
        """The welcome message's JSON: one bytes object per user, first subscriptions and site,
        so that a storm of handshakes encodes it (and frames it, see ``frame``) once, not each.
        ``site`` (the site's path) lets a client map event paths to links on its own origin."""
        key = (userid, tuple(subscriptions), site)
        payload = self._welcomes.get(key)
        if payload is None:
            if len(self._welcomes) >= WELCOMES_KEPT:
                self._welcomes.clear()
            payload = self._welcomes[key] = json.dumps(
                {"type": "welcome", "instance": self.instance_name, "user": userid,
                 "site": site, "subscriptions": list(subscriptions)}).encode("utf-8")
        return payload

    # Which requests are ours

    def site_for(self, path):
        """The site id for a handshake path ("/ws" -> default site, "/X/ws" -> "X"), or None."""
        ws = self.settings.path
        if path == ws:
            return self.settings.site
        if path.endswith(ws):
            site = path[: -len(ws)]
            if site.count("/") == 1 and len(site) > 1:
                return site[1:]
        return None

    def handle(self, request, environ):
        """Take over ``request`` if it is for the endpoint; return a render result or None."""
        path = request.path.decode("latin-1")
        site = self.site_for(path)
        if site is None:
            return None
        if not is_websocket_upgrade(request):
            if request.clientproto in (b"HTTP/2", b"HTTP/3"):
                return _error(request, 426, H2_UPGRADE, upgrade=True)
            return _error(request, 426, "this is a WebSocket endpoint: send a WebSocket upgrade"
                                        " over HTTP/1.1", upgrade=True)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        first = query.get("path", [None])[0]
        try:
            first = normalize_path(first) if first else None
        except ValueError as exc:
            return _error(request, 400, f"bad path parameter: {exc}")
        if first and not path_matches(f"/{site}", first):
            # the connection's tokens will be this site's roles: refused before Zope is asked
            return _error(request, 403, f"path {first} is outside this endpoint's site /{site}:"
                                        " connect to that site's endpoint")
        self.pacing.handshake()
        protocol = self.factory.buildProtocol(request.getClientAddress())
        protocol.handshake = {"environ": environ, "site": site, "path": first,
                              "secure": environ.get("wsgi.url_scheme") == "https"}
        if not hand_off(request, protocol):
            return _error(request, 426, H2_UPGRADE, upgrade=True)
        return server.NOT_DONE_YET

    # Policies used by the protocol

    def full(self):
        return len(self.hub) >= self.settings.max_connections

    def check_origin(self, origin, handshake):
        """None if ``origin`` may connect, else the reason for refusing."""
        if not origin:
            return None  # not a browser: scripts and the listen command send no Origin
        origin = origin.rstrip("/").lower()
        environ = handshake["environ"]
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}".lower()
        if origin == own or origin in self.settings.allowed_origins:
            return None
        log.info("refused WebSocket from origin {origin} (site is {own})", origin=origin, own=own)
        return f"origin {origin} is not allowed"

    def close_all(self, code=1001, reason="server shutting down"):
        for subscriber in list(self.hub.subscribers):
            protocol = getattr(subscriber.send, "__self__", None)
            if protocol is not None:
                # sendClose only accepts 1000 and 3000-4999; 1001 (going away) is the server's
                protocol.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8"), isReply=False)
        self.sending.close()
        self.pacing.release()


class CollectorPacing:
    """No full garbage collection while handshakes pour in (reactor thread only).

    Every connection keeps a few dozen long-lived objects; as they pile up, the collector's
    full passes come again and again (each time the survivors grew by a quarter), each over
    every connection so far: four passes during 10,000 connects, a tenth of their CPU. Once
    ``burst`` handshakes arrive within ``window`` seconds, the threshold of the oldest
    generation is raised out of reach; the young generations are still collected (a
    handshake leaves no garbage cycle of its own: see handoff). It is restored once a window
    passes without such a burst, or after ``longest`` seconds (then not held again for as
    long): garbage that reached the oldest generation meanwhile waits that long at most.
    """

    #: The oldest generation's threshold during a storm (collections of the middle one).
    HELD = 1 << 30

    def __init__(self, reactor, burst=200, window=1.0, longest=30.0, collector=gc):
        self.reactor = reactor
        self.burst = burst
        self.window = window
        self.longest = longest
        self.collector = collector
        self.saved = None  # the thresholds to restore while a storm holds the full passes
        self._held_since = None
        self._not_before = None  # after a hold of ``longest``: no new hold until then
        self._window_start = None
        self._count = 0
        self._storm_count = 0

    @property
    def holding(self):
        return self.saved is not None

    def handshake(self):
        if self.saved is not None:
            self._storm_count += 1
            return
        now = self.reactor.seconds()
        if self._window_start is None or now - self._window_start > self.window:
            self._window_start, self._count = now, 0
        self._count += 1
        if self._count >= self.burst and (self._not_before is None or now >= self._not_before):
            self.saved = self.collector.get_threshold()
            self.collector.set_threshold(self.saved[0], self.saved[1], self.HELD)
            self._held_since, self._storm_count = now, 0
            self.reactor.callLater(self.window, self._check)

    def _check(self):
        if self.saved is None:
            return
        now = self.reactor.seconds()
        if self._storm_count >= self.burst and now - self._held_since < self.longest:
            self._storm_count = 0  # still pouring in
            self.reactor.callLater(self.window, self._check)
            return
        if self._storm_count >= self.burst:
            self._not_before = now + self.longest
        self.release()

    def release(self):
        if self.saved is not None:
            self.collector.set_threshold(*self.saved)
            self.saved = None
            self._window_start, self._count = None, 0


_REASONS = {400: b"Bad Request", 403: b"Forbidden", 426: b"Upgrade Required"}


def _error(request, code, reason, upgrade=False):
    request.setResponseCode(code, _REASONS.get(code))
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    if upgrade:
        request.setHeader(b"upgrade", b"websocket")
    return reason.encode("utf-8") + b"\n"
