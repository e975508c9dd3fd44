"""Health endpoints for Kubernetes probes, on a listener of their own (``<health-server>``).

``GET /healthz/startup``, ``/healthz/live`` and ``/healthz/ready`` answer 200 or 503 with
``{"status": "ok"|"degraded"|"fail", "checks": {NAME: {"status": "ok"|"degraded"|"fail", ...}}}``:

- startup: Zope has started (a site made by ``--site`` exists by then);
- live: the reactor answers (when it does not, the probe times out) and the publisher pool
  is not stuck (``PoolCanary``); never a ZODB connection;
- ready: started, not draining (SIGTERM), the pool not stuck. Only what is this instance's
  own: the dependencies every instance shares, the databases (``DatabaseCheck``) and the
  event bus (``LinkCheck``), are ``Shared`` checks. Their loss is "degraded" (HTTP 200, with
  since when): it takes every instance alike, and taking them all out of the front or the
  Service would turn a lost broker into a lost site, when pages can still be served.

The listener is a plain Twisted ``Site``, not a ``ZopeSite``: no Zope tree, no share of
max-connections, no access log. Answers are computed on the reactor from state kept here, so
a probe never waits for a publisher thread. A check has a ``name`` and ``check()`` returning
``(ok, details)``; ``details`` is a JSON-able dict with a ``reason`` when not ok. Every method
here runs on the reactor thread unless it says otherwise.
"""

import json
import threading
import time
from datetime import datetime, timezone

from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

log = Logger()

STARTUP, LIVE, READY = b"/healthz/startup", b"/healthz/live", b"/healthz/ready"


class Started:
    """Zope has started; set by the wiring once the app exists and the reactor runs."""

    name = "zope"

    def __init__(self, site=None):
        self.site = site
        self.started = False

    def mark(self):
        self.started = True

    def check(self):
        details = {"site": self.site} if self.site else {}
        if not self.started:
            return False, {"reason": "Zope is starting", **details}
        return True, details


class Draining:
    """Fails from the moment SIGTERM starts the drain (``InFlight.draining``, shutdown.py)."""

    name = "shutdown"

    def __init__(self, tracker):
        self.tracker = tracker

    def check(self):
        details = {"in_flight": self.tracker.count}
        if self.tracker.draining:
            return False, {"reason": "shutting down: no new requests, finishing those in flight",
                           **details}
        return True, details


def _noop():
    return None


class PoolCanary:
    """The publisher pool is stuck when a no-op task queued in it (the canary) has not run
    within ``stuck_after`` seconds: every thread has been busy that long while work waited.

    A check queues a canary when none is on its way and judges the one on its way by its
    age. It sees what timing the publishes would miss: threads held by background tasks or
    WebSocket handshakes, and a deadlocked pool.
    """

    name = "publisher-pool"

    def __init__(self, reactor, pool, stuck_after):
        self.reactor = reactor
        self.pool = pool
        self.stuck_after = stuck_after
        self.sent = None  # when the canary on its way was queued
        self.round_trip = None  # how long the last canary took to run

    def check(self):
        now = self.reactor.seconds()
        if self.sent is None:
            self.sent = now
            deferToThreadPool(self.reactor, self.pool, _noop).addBoth(self._returned)
        waited = 0.0 if self.sent is None else now - self.sent  # a synchronous pool: back already
        details = {"waiting": round(waited, 3)}
        if self.round_trip is not None:
            details["last_round_trip"] = round(self.round_trip, 3)
        if waited > self.stuck_after:
            return False, {"reason": f"a task queued {waited:.0f}s ago has not run: every publisher"
                                     f" thread busy for longer than stuck-after"
                                     f" ({self.stuck_after:g}s)", **details}
        return True, details

    def _returned(self, _):
        if self.sent is not None:
            self.round_trip = self.reactor.seconds() - self.sent
            self.sent = None


def in_thread(reactor, f):
    """Run ``f`` in a new daemon thread; a Deferred firing on the reactor with its result.

    Not the publisher pool (a check must neither wait for a publisher thread nor take one)
    and not a pool at all: a check blocked on a dead database must not keep the process
    from exiting. One check runs at a time, every few seconds: a thread each is cheap.
    """
    d = defer.Deferred()

    def work():
        try:
            result = f()
        except BaseException:
            reactor.callFromThread(d.errback, Failure())
        else:
            reactor.callFromThread(d.callback, result)

    threading.Thread(target=work, name="txzserver-health-check", daemon=True).start()
    return d


class DatabaseCheck:
    """The databases answer.

    ``disconnected()`` (reactor thread, cheap) names the storages that know they have lost
    their server (ZEO's ``is_connected()``): the check fails at once, without trying more.
    ``probe()`` (another thread, may block) opens a connection and reads, for storages that
    only find out by trying (RelStorage, FileStorage), and may check the site; it returns a
    dict of details or raises. It runs at most every ``interval`` seconds, one at a time,
    started by a check; the last result answers in between. A probe still running after
    ``timeout`` seconds is a failure. ``run(f)`` -> Deferred runs the probe (``in_thread``).
    """

    name = "database"

    def __init__(self, reactor, probe, disconnected=tuple, interval=5.0, timeout=10.0, run=None):
        self.reactor = reactor
        self.probe = probe
        self.disconnected = disconnected
        self.interval = interval
        self.timeout = timeout
        self.run = run or (lambda f: in_thread(reactor, f))
        self.running_since = None
        self.last = None  # (when it finished, ok, details)

    def check(self):
        now = self.reactor.seconds()
        down = list(self.disconnected())
        if down:
            return False, {"reason": f"not connected to the storage server: {', '.join(down)}"}
        self._probe_if_due(now)
        if self.running_since is not None and now - self.running_since > self.timeout:
            return False, {"reason": f"the database check has not answered for"
                                     f" {now - self.running_since:.0f}s"}
        if self.last is None:
            return False, {"reason": "the database check has not answered yet"}
        when, ok, details = self.last
        return ok, {**details, "checked_ago": round(now - when, 3)}

    def _probe_if_due(self, now):
        if self.running_since is not None:
            return
        if self.last is not None and now - self.last[0] < self.interval:
            return
        self.running_since = now
        self.run(self.probe).addCallbacks(self._answered, self._failed)

    def _answered(self, details):
        self.running_since = None
        self.last = (self.reactor.seconds(), True, dict(details or {}))

    def _failed(self, failure):
        self.running_since = None
        reason = f"{failure.type.__name__}: {failure.getErrorMessage()}"[:300]
        self.last = (self.reactor.seconds(), False, {"reason": reason})


class LinkCheck:
    """Links that know whether they are up: ``links()`` -> {endpoint: connected}."""

    def __init__(self, name, links):
        self.name = name
        self.links = links

    def check(self):
        links = self.links()
        details = {"links": {endpoint: "up" if up else "down" for endpoint, up in links.items()}}
        down = sorted(endpoint for endpoint, up in links.items() if not up)
        if down:
            return False, {"reason": f"not connected to {', '.join(down)}", **details}
        return True, details


class Shared:
    """A dependency every instance shares (the databases, the event bus): its loss degrades
    the instance (reported, counted in metrics) but never makes it unready.

    Wraps a check; ``observe()`` runs it and keeps since when it has been failing
    (``down_since``, wall-clock seconds), logging each change once. ``up`` may be read from
    any thread (a write refused while the database is down reads it in a publisher thread).
    """

    def __init__(self, check, clock=time.time):
        self.inner = check
        self.name = check.name
        self.clock = clock
        self.down_since = None
        self.details = {}

    @property
    def up(self):
        return self.down_since is None

    def observe(self):
        """Run the check; (ok, details) with ``since`` and ``down_for`` while it fails."""
        ok, details = self.inner.check()
        now = self.clock()
        if ok and self.down_since is not None:
            log.info("{name} is back after {seconds:.1f}s", name=self.name,
                     seconds=now - self.down_since)
            self.down_since = None
        elif not ok and self.down_since is None:
            self.down_since = now
            log.warn("{name} lost, this instance is degraded (still ready): {reason}",
                     name=self.name, reason=details.get("reason", "?"))
        if not ok:
            since = datetime.fromtimestamp(self.down_since, timezone.utc)
            details = {**details, "since": since.isoformat(timespec="seconds"),
                       "down_for": round(now - self.down_since, 3)}
        self.details = details
        return ok, details

    check = observe


def watch(reactor, shared, interval):
    """Observe the ``shared`` checks every ``interval`` seconds from when the reactor runs,
    so their state (metrics, refused writes) is current without a probe asking. Returns the
    LoopingCall."""
    def observe_all():
        for check in shared:
            try:
                check.observe()
            except Exception:
                log.failure("health check {name} failed", name=check.name)

    loop = task.LoopingCall(observe_all)
    loop.clock = reactor
    reactor.callWhenRunning(loop.start, interval, now=False)
    return loop


class Health:
    """The checks behind each probe path, and the answer to a probe.

    ``shared`` (``Shared`` checks) answer on the ready probe after ``ready``: failing, they
    answer "degraded" and keep its 200; any other failing check answers "fail" with 503.
    """

    def __init__(self, startup, live, ready, shared=()):
        self.shared = tuple(shared)
        self.probes = {STARTUP: tuple(startup), LIVE: tuple(live),
                       READY: tuple(ready) + self.shared}
        self._was_ok = {}

    def answer(self, path):
        """(HTTP status, JSON-able body) for a probe path, or None for another path."""
        checks = self.probes.get(path)
        if checks is None:
            return None
        results, ok, degraded = {}, True, False
        for check in checks:
            try:
                passed, details = check.check()
            except Exception as exc:
                log.failure("health check {name} failed", name=check.name)
                passed, details = False, {"reason": f"the check itself failed: {exc!r}"[:300]}
            if passed:
                status = "ok"
            elif check in self.shared:
                status, degraded = "degraded", True
            else:
                status, ok = "fail", False
            results[check.name] = {"status": status, **details}
        self._log_change(path, ok, results)
        overall = "fail" if not ok else "degraded" if degraded else "ok"
        return (200 if ok else 503), {"status": overall, "checks": results}

    def last(self, path):
        """True or False: the last answer to probe ``path`` (the kubelet's view), None before
        the first probe. Read by the ``txzserver_ready`` metric, which runs no check itself."""
        return self._was_ok.get(path)

    def _log_change(self, path, ok, results):
        was = self._was_ok.get(path)
        self._was_ok[path] = ok
        if was is None or was == ok:
            return
        if ok:
            log.info("{path} ok again", path=path.decode())
        else:
            reasons = "; ".join(f"{name}: {r['reason']}" for name, r in results.items()
                                if r["status"] == "fail" and "reason" in r)
            log.warn("{path} failing: {reasons}", path=path.decode(), reasons=reasons)


class HealthResource(resource.Resource):
    """Every path of the health listener: the three probes as JSON, 404 for the rest."""

    isLeaf = True

    def __init__(self, health):
        super().__init__()
        self.health = health

    def render(self, request):
        if request.method not in (b"GET", b"HEAD"):  # Twisted's own 405 page is HTML
            request.setHeader(b"allow", b"GET, HEAD")
            return self._json(request, 405, {"status": "fail", "reason": "probes are GET or HEAD"})
        answer = self.health.answer(request.path)
        if answer is None:
            paths = sorted(p.decode() for p in self.health.probes)
            code, body = 404, {"status": "fail", "reason": "not a probe path", "paths": paths}
        else:
            code, body = answer
        return self._json(request, code, body)

    def _json(self, request, code, body):
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(body, sort_keys=True).encode() + b"\n"


class HealthSite(server.Site):
    """The probes' listener: Twisted's HTTP/1.1, no connection limit, no access log (a probe
    every few seconds would bury the requests that matter)."""

    noisy = False
    displayTracebacks = False

    def __init__(self, health, reactor=None, idle_timeout=30):
        super().__init__(HealthResource(health), reactor=reactor)
        self.timeOut = idle_timeout

    def log(self, request):
        pass
