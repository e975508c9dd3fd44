"""txzserver.server.health: the probes' checks and their state transitions, on a
MemoryReactorClock with fake pools, databases and links; the listener over a StringTransport;
its wiring (app.build_health) and its zope.conf section. The event-bus links are watched on a
real broker (ipc:// in a temporary directory), as in test_bus_publishers."""

import json

import pytest
from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent

from txzserver.app import build_health
from txzserver.bus.publishers import LocalPublisher, ZmqBus
from txzserver.config import ConfigError, load
from txzserver.config.datatypes import EventBusSettings, HealthSettings, Listener
from txzserver.config.settings import SettingsError
from txzserver.server.health import (
    LIVE, READY, STARTUP, DatabaseCheck, Draining, Health, HealthSite, LinkCheck, PoolCanary, Shared,
    Started, watch,
)
from txzserver.server.shutdown import InFlight, drain
from txzserver.server.negotiate import NegotiatingProtocol
from txzserver.websocket.fanout import Hub
from txzserver.zope.instance import render_config

from ..support.threadpools import ManualThreadPool, SynchronousThreadPool
from .helpers import HOST, PEER, ThreadsReactor, make_settings, parse_http1
from .zmqbroker import running_broker, wait_for

HEALTH = HealthSettings(Listener("health", "127.0.0.1", 8081), stuck_after=10.0,
                        check_interval=5.0, check_timeout=8.0)


class ManualRun:
    """The database probe's thread, run by hand: ``answer`` or ``fail`` the one pending."""

    def __init__(self):
        self.pending = []

    def __call__(self, f):
        d = defer.Deferred()
        self.pending.append((f, d))
        return d

    def answer(self):
        f, d = self.pending.pop(0)
        defer.maybeDeferred(f).chainDeferred(d)


class FakeDatabases:
    """The ZODB as the health checks see it: ZEO's connected flag and the probe's outcome."""

    def __init__(self):
        self.connected = True
        self.error = None
        self.probes = 0

    def disconnected(self):
        return [] if self.connected else ["main"]

    def probe(self):
        self.probes += 1
        if self.error is not None:
            raise self.error
        return {"databases": ["main"], "site": "Plone"}


@pytest.fixture
def reactor():
    return ThreadsReactor()


def status(health, path):
    code, body = health.answer(path)
    assert body["status"] in (("ok", "degraded") if code == 200 else ("fail",))
    return code, body["checks"]


# Started (startup probe)

def test_startup_fails_until_zope_started():
    started = Started("Plone")
    health = Health(startup=[started], live=[], ready=[started])
    code, checks = status(health, STARTUP)
    assert code == 503
    assert checks["zope"] == {"status": "fail", "reason": "Zope is starting", "site": "Plone"}
    assert status(health, READY)[0] == 503
    started.mark()
    assert status(health, STARTUP) == (200, {"zope": {"status": "ok", "site": "Plone"}})


# Draining (SIGTERM)

class FakePort:
    stopped = False

    def stopListening(self):
        self.stopped = True


def test_ready_fails_from_the_moment_the_drain_starts_live_does_not(reactor):
    tracker = InFlight()
    pool = SynchronousThreadPool()
    canary = PoolCanary(reactor, pool, 10)
    started = Started()
    started.mark()
    health = Health(startup=[started], live=[canary], ready=[started, Draining(tracker), canary])
    tracker.started()  # a download in flight
    assert status(health, READY)[0] == 200
    d = drain(reactor, [FakePort()], tracker, timeout=30)
    code, checks = status(health, READY)
    assert code == 503
    assert checks["shutdown"]["status"] == "fail"
    assert checks["shutdown"]["in_flight"] == 1
    assert "shutting down" in checks["shutdown"]["reason"]
    assert status(health, LIVE)[0] == 200
    tracker.ended()  # the download finished; the drain ends, readiness stays failed
    assert d.called
    assert status(health, READY)[0] == 503


# PoolCanary (liveness)

def test_pool_canary_fails_only_after_stuck_after(reactor):
    pool = ManualThreadPool()
    canary = PoolCanary(reactor, pool, stuck_after=10)
    health = Health(startup=[], live=[canary], ready=[canary])
    code, checks = status(health, LIVE)
    assert code == 200 and checks["publisher-pool"]["waiting"] == 0
    assert len(pool.calls) == 1  # the canary, waiting for a thread
    reactor.advance(9)
    code, checks = status(health, LIVE)
    assert code == 200 and checks["publisher-pool"]["waiting"] == 9
    assert len(pool.calls) == 1  # one canary at a time
    reactor.advance(2)
    code, checks = status(health, LIVE)
    assert code == 503
    assert "every publisher thread busy for longer than stuck-after (10s)" in \
        checks["publisher-pool"]["reason"]
    assert status(health, READY)[0] == 503  # a stuck pool is not ready either
    pool.run()  # a thread is free again: the canary ran
    code, checks = status(health, LIVE)
    assert code == 200
    assert checks["publisher-pool"]["last_round_trip"] == 11
    assert len(pool.calls) == 1  # the next canary is on its way


def test_pool_canary_with_a_free_pool_comes_back_at_once(reactor):
    pool = SynchronousThreadPool()
    canary = PoolCanary(reactor, pool, stuck_after=1)
    for _ in range(3):
        assert canary.check()[0]
        reactor.advance(5)
    assert pool.calls == 3
    assert canary.check()[1]["last_round_trip"] == 0


# DatabaseCheck (readiness)

def database_check(reactor, databases, run):
    return DatabaseCheck(reactor, databases.probe, databases.disconnected, interval=5, timeout=8,
                         run=run)


def test_database_check_answers_from_the_last_probe(reactor):
    databases, run = FakeDatabases(), ManualRun()
    check = database_check(reactor, databases, run)
    ok, details = check.check()
    assert not ok and details["reason"] == "the database check has not answered yet"
    assert len(run.pending) == 1
    run.answer()
    ok, details = check.check()
    assert ok and details == {"databases": ["main"], "site": "Plone", "checked_ago": 0}
    reactor.advance(4)
    assert check.check()[0] and run.pending == []  # cached: no probe within the interval
    reactor.advance(1)
    ok, details = check.check()
    assert ok and details["checked_ago"] == 5  # the last answer while the next probe runs
    assert len(run.pending) == 1
    databases.error = OSError("could not connect to server: Connection refused")
    run.answer()
    ok, details = check.check()
    assert not ok
    assert details["reason"] == "OSError: could not connect to server: Connection refused"
    databases.error = None
    reactor.advance(5)
    check.check()
    run.answer()
    assert check.check()[0]
    assert databases.probes == 3


def test_database_check_fails_when_a_probe_hangs(reactor):
    databases, run = FakeDatabases(), ManualRun()
    check = database_check(reactor, databases, run)
    check.check()
    run.answer()
    reactor.advance(5)
    assert check.check()[0]  # a new probe started, it hangs
    reactor.advance(8)
    assert check.check()[0]
    reactor.advance(0.5)
    ok, details = check.check()
    assert not ok and details["reason"] == "the database check has not answered for 8s"
    assert len(run.pending) == 1  # no second probe while one hangs
    run.answer()
    assert check.check()[0]


def test_database_check_fails_at_once_while_zeo_is_disconnected(reactor):
    databases, run = FakeDatabases(), ManualRun()
    check = database_check(reactor, databases, run)
    check.check()
    run.answer()
    databases.connected = False
    ok, details = check.check()
    assert not ok and details == {"reason": "not connected to the storage server: main"}
    reactor.advance(30)
    assert not check.check()[0]
    assert run.pending == []  # no probe that would block on the dead server
    databases.connected = True
    assert len(run.pending) == 0 and check.check()[0] is True  # the last good answer, 30s old
    assert len(run.pending) == 1  # and a fresh probe on its way
    run.answer()
    assert check.check() == (True, {"databases": ["main"], "site": "Plone", "checked_ago": 0})


def test_database_check_in_a_real_thread(reactor):
    """The default runner: a daemon thread whose answer comes back through callFromThread."""
    import threading
    answered = threading.Event()
    threads = []

    def probe():
        threads.append(threading.current_thread())
        return {"databases": ["main"]}

    check = DatabaseCheck(reactor, probe)
    check.run(probe).addCallback(lambda r: answered.set())
    assert answered.wait(10)
    assert threads[0] is not threading.current_thread() and threads[0].daemon


# LinkCheck (event bus)

def test_link_check_names_the_links_down():
    links = {"tcp://broker:5559": True, "tcp://broker:5560": False}
    check = LinkCheck("event-bus", lambda: links)
    ok, details = check.check()
    assert not ok
    assert details["reason"] == "not connected to tcp://broker:5560"
    assert details["links"] == {"tcp://broker:5559": "up", "tcp://broker:5560": "down"}
    links["tcp://broker:5560"] = True
    assert check.check()[0]


def test_zmq_bus_links_follow_the_broker(tmp_path, reactor):
    with running_broker(tmp_path) as broker:
        bus = ZmqBus(reactor, Hub(), broker.frontend, broker.backend, watch=True)
        try:
            wait_for(lambda: all(bus.links_up().values()), what="both links up")
            assert set(bus.links_up()) == {broker.frontend, broker.backend}
        except BaseException:
            bus.close()
            raise
    try:
        wait_for(lambda: not any(bus.links_up().values()), what="both links down")
        with running_broker(tmp_path, base=broker.directory.rsplit("/", 1)[0]) as again:
            assert again.frontend == broker.frontend
            wait_for(lambda: all(bus.links_up().values()), what="the links up again")
    finally:
        bus.close()
    assert bus.links_up() == {broker.frontend: True, broker.backend: True}  # last known, closed


def test_zmq_bus_without_watch_has_no_links(tmp_path, reactor):
    with running_broker(tmp_path) as broker:
        bus = ZmqBus(reactor, Hub(), broker.frontend, broker.backend)
        assert bus.links_up() == {}
        bus.close()


# Health.answer

class Exploding:
    name = "broken"

    def check(self):
        raise RuntimeError("boom")


def test_a_check_that_raises_fails_its_probe(logged):
    health = Health(startup=[Exploding()], live=[], ready=[])
    code, checks = status(health, STARTUP)
    assert code == 503
    assert checks["broken"]["reason"] == "the check itself failed: RuntimeError('boom')"
    assert health.answer(b"/healthz") is None


def test_transitions_are_logged_once(logged):
    started = Started()
    health = Health(startup=[started], live=[], ready=[started])
    health.answer(READY)  # the first answer is no transition
    started.mark()
    health.answer(READY)
    health.answer(READY)
    started.started = False
    health.answer(READY)
    texts = [formatEvent(e) for e in logged if e.get("log_namespace") == "txzserver.server.health"]
    assert texts == ["/healthz/ready ok again", "/healthz/ready failing: zope: Zope is starting"]


# The listener

def get(site, request):
    protocol = site.buildProtocol(PEER)
    transport = StringTransport(hostAddress=HOST, peerAddress=PEER)
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    return protocol, transport.value()


def test_health_site_answers_json(reactor):
    started = Started()
    site = HealthSite(Health(startup=[started], live=[], ready=[started]), reactor=reactor)
    _, raw = get(site, b"GET /healthz/startup HTTP/1.1\r\nHost: x\r\n\r\n")
    code, headers, body = parse_http1(raw)
    assert code == 503
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"cache-control"] == b"no-store"
    assert json.loads(body) == {"status": "fail", "checks": {
        "zope": {"status": "fail", "reason": "Zope is starting"}}}
    started.mark()
    code, _, body = parse_http1(get(site, b"GET /healthz/live HTTP/1.1\r\nHost: x\r\n\r\n")[1])
    assert (code, json.loads(body)) == (200, {"status": "ok", "checks": {}})


def test_health_site_other_paths_and_methods(reactor):
    site = HealthSite(Health(startup=[], live=[], ready=[]), reactor=reactor)
    code, _, body = parse_http1(get(site, b"GET /Plone HTTP/1.1\r\nHost: x\r\n\r\n")[1])
    assert code == 404
    assert json.loads(body)["paths"] == ["/healthz/live", "/healthz/ready", "/healthz/startup"]
    code, headers, body = parse_http1(get(site, b"POST /healthz/live HTTP/1.1\r\nHost: x\r\n"
                                                b"Content-Length: 0\r\n\r\n")[1])
    assert code == 405 and headers[b"allow"] == b"GET, HEAD"
    assert json.loads(body)["reason"] == "probes are GET or HEAD"
    code, headers, body = parse_http1(get(site, b"HEAD /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n")[1])
    assert code == 200 and body == b"" and int(headers[b"content-length"]) > 0


def test_health_site_is_outside_the_connection_limit(reactor):
    site = HealthSite(Health(startup=[], live=[], ready=[]), reactor=reactor)
    protocol, _ = get(site, b"")
    assert not isinstance(protocol, NegotiatingProtocol)


# Wiring (app.build_health)

def test_build_health_wires_every_check(reactor):
    databases = FakeDatabases()
    tracker = InFlight()
    settings = make_settings(health=HEALTH)
    site, started, shared = build_health(reactor, SynchronousThreadPool(), settings, tracker,
                                         LocalPublisher(reactor, Hub()), "Plone",
                                         probe=databases.probe, disconnected=databases.disconnected)
    health = site.resource.health
    assert [c.name for c in health.probes[STARTUP]] == ["zope"]
    assert [c.name for c in health.probes[LIVE]] == ["publisher-pool"]
    assert [c.name for c in health.probes[READY]] == ["zope", "shutdown", "publisher-pool", "database"]
    assert health.probes[LIVE][0].stuck_after == 10
    assert list(shared) == ["database"] and health.shared == (shared["database"],)
    database = shared["database"].inner
    assert (database.interval, database.timeout) == (5, 8)
    assert status(health, STARTUP)[0] == 503
    reactor.run()  # the first database probe starts when the reactor runs (in a thread)
    started.mark()
    wait_for(lambda: database.last is not None, what="the first probe")  # callFromThread: at once
    assert databases.probes == 1
    assert health.answer(READY)[1]["status"] == "ok"
    assert status(health, STARTUP)[0] == 200


class LinkedPublisher(LocalPublisher):
    def links_up(self):
        return {"tcp://broker:5559": False}


def test_build_health_watches_the_event_bus_when_configured(reactor):
    bus = EventBusSettings("tcp://broker:5559", "tcp://broker:5560")
    for settings, names in ((make_settings(health=HEALTH), []),
                            (make_settings(health=HEALTH, event_bus=bus), ["event-bus"])):
        site, _, shared = build_health(reactor, SynchronousThreadPool(), settings, InFlight(),
                                       LinkedPublisher(reactor, Hub()), probe=dict,
                                       disconnected=list)
        ready = site.resource.health.probes[READY]
        assert [c.name for c in ready[4:]] == names
        assert list(shared) == ["database", *names]


# Configuration

def load_with(instance, section):
    path = instance / "etc" / "zope.conf"
    path.write_text(render_config(str(instance)) + "\n" + section)
    return load(str(path))[1]


def test_health_server_section_defaults(instance):
    settings = load_with(instance, "<health-server>\n  address 8081\n</health-server>\n")
    assert settings.health == HealthSettings(Listener("health", "", 8081, 128))  # the same defaults
    assert (settings.health.stuck_after, settings.health.check_interval) == (300.0, 5.0)
    assert [listener.kind for listener in settings.listeners] == ["http"]  # not a Zope listener


def test_health_server_section_keys(instance):
    settings = load_with(instance, "<health-server>\n  address 127.0.0.1:9100\n  stuck-after 2m\n"
                                   "  check-interval 2s\n  check-timeout 3s\n  storage-wait 2s\n"
                                   "</health-server>\n")
    assert settings.health == HealthSettings(Listener("health", "127.0.0.1", 9100, 128),
                                             stuck_after=120.0, check_interval=2.0, check_timeout=3.0,
                                             storage_wait=2.0)


def test_no_health_server_section(instance):
    assert load_with(instance, "").health is None


@pytest.mark.parametrize("section, message", [
    ("<health-server>\n</health-server>\n", "address"),
    ("<health-server>\n  address 8081\n  stuck-after 0\n</health-server>\n", "stuck-after must be positive"),
    ("<health-server>\n  address 8081\n  storage-wait 0\n</health-server>\n",
     "storage-wait must be positive"),
    ("<health-server>\n  address 8080\n</health-server>\n", "both listen on *:8080"),
    ("<health-server>\n  address 8081\n  frobnicate 1\n</health-server>\n", "frobnicate"),
])
def test_bad_health_server_sections(instance, section, message):
    with pytest.raises(ConfigError) as info:
        load_with(instance, section)
    assert message in str(info.value)


def test_health_port_must_differ_from_the_listeners():
    with pytest.raises(SettingsError):
        make_settings(health=HealthSettings(Listener("health", "127.0.0.1", 8080)))


# Shared dependencies: degraded, never unready

class Switch:
    """A check whose outcome the test sets."""

    def __init__(self, name, ok=True):
        self.name = name
        self.ok = ok

    def check(self):
        return (True, {}) if self.ok else (False, {"reason": f"{self.name} is gone"})


def test_a_lost_shared_dependency_degrades_ready_and_keeps_200(logged):
    clock = [1000.0]
    started, bus = Started(), Switch("event-bus")
    started.mark()
    shared = Shared(bus, clock=lambda: clock[0])
    health = Health(startup=[started], live=[], ready=[started], shared=[shared])
    assert health.answer(READY) == (200, {"status": "ok", "checks": {
        "zope": {"status": "ok"}, "event-bus": {"status": "ok"}}})
    bus.ok = False
    clock[0] += 2.5
    code, body = health.answer(READY)
    assert code == 200 and body["status"] == "degraded"
    assert body["checks"]["event-bus"] == {"status": "degraded", "reason": "event-bus is gone",
                                           "since": "1970-01-01T00:16:42+00:00", "down_for": 0}
    assert not shared.up
    clock[0] += 7
    code, body = health.answer(READY)
    assert body["checks"]["event-bus"]["down_for"] == 7  # since the outage began, not the probe
    started.started = False  # an own check failing still fails the probe
    code, body = health.answer(READY)
    assert (code, body["status"]) == (503, "fail")
    assert body["checks"]["event-bus"]["status"] == "degraded"
    started.mark()
    bus.ok = True
    assert health.answer(READY)[1]["status"] == "ok" and shared.up
    texts = [formatEvent(e) for e in logged if e.get("log_namespace") == "txzserver.server.health"]
    assert texts == ["event-bus lost, this instance is degraded (still ready): event-bus is gone",
                     "/healthz/ready failing: zope: Zope is starting",
                     "event-bus is back after 7.0s", "/healthz/ready ok again"]


def test_a_lost_database_is_degraded_not_unready(reactor):
    databases, run = FakeDatabases(), ManualRun()
    started = Started()
    started.mark()
    database = Shared(database_check(reactor, databases, run))
    health = Health(startup=[started], live=[], ready=[started], shared=[database])
    database.check()
    run.answer()
    assert health.answer(READY)[1]["status"] == "ok"
    databases.connected = False
    code, body = health.answer(READY)
    assert (code, body["status"]) == (200, "degraded")
    assert body["checks"]["database"]["reason"] == "not connected to the storage server: main"


def test_watch_observes_the_shared_checks_without_a_probe(reactor):
    bus = Switch("event-bus")
    shared = Shared(bus)
    watch(reactor, [shared], 2.0)
    reactor.run()
    bus.ok = False
    assert shared.up  # nothing observed yet
    reactor.advance(2)
    assert not shared.up
    bus.ok = True
    reactor.advance(2)
    assert shared.up


def test_build_metrics_reads_the_dependencies(reactor):
    from txzserver.app import build_metrics
    from txzserver.config.datatypes import MetricsSettings
    from txzserver.metrics import ServerMetrics
    database, bus = Shared(Switch("database")), Shared(Switch("event-bus", ok=False))
    database.observe()
    bus.observe()
    metrics = ServerMetrics()
    settings = make_settings(metrics=MetricsSettings(Listener("metrics", "", 0)))
    build_metrics(reactor, metrics, settings, Hub(), LocalPublisher(reactor, Hub()), zodb=Nothing(),
                  shared={"database": database, "event-bus": bus})
    found = {tuple(sample.labels.items()): sample.value for family in metrics.registry.collect()
             if family.name == "txzserver_dependency_up" for sample in family.samples}
    assert found == {(("dependency", "database"),): 1, (("dependency", "event-bus"),): 0}


def test_build_metrics_reads_the_last_readiness_answer_and_the_websocket_limit(reactor):
    """txzserver_ready is the kubelet's view (the last probe's answer), read without running a
    check; txzserver_websocket_subscribers_max is <websocket> max-connections (the alert's
    denominator)."""
    from txzserver.app import build_metrics
    from txzserver.config.datatypes import MetricsSettings, WebSocketSettings
    from txzserver.metrics import ServerMetrics
    started = Switch("started", ok=False)
    health = Health(startup=[started], live=[], ready=[started])
    metrics = ServerMetrics()
    settings = make_settings(metrics=MetricsSettings(Listener("metrics", "", 0)),
                             websocket=WebSocketSettings(max_connections=250))
    build_metrics(reactor, metrics, settings, Hub(), LocalPublisher(reactor, Hub()), zodb=Nothing(),
                  health=health)

    def read():
        return {family.name: family.samples[0].value for family in metrics.registry.collect()
                if family.name in ("txzserver_ready", "txzserver_websocket_subscribers_max")}

    assert read() == {"txzserver_websocket_subscribers_max": 250}  # no probe yet: no sample
    assert health.answer(READY)[0] == 503
    assert read()["txzserver_ready"] == 0
    started.ok = True
    assert read()["txzserver_ready"] == 0  # a scrape runs no check
    assert health.answer(READY)[0] == 200
    assert read()["txzserver_ready"] == 1


class Nothing:
    def collect(self):
        return iter(())
