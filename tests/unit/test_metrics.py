"""Prometheus metrics: ServerMetrics and its Readings (txzserver.metrics), the requests a real
ZopeSite counts over HTTP/1.1 and HTTP/2 (StringTransport, no sockets), the connections by
protocol, the publisher pool and admission readings, the metrics listener, the event bus and
hub readings wired by app.build_metrics, the ZODB figures of a real DB, and the config."""

import threading

import pytest
import transaction
import ZODB
from persistent.mapping import PersistentMapping
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.interfaces import INegotiated
from twisted.internet.testing import MemoryReactorClock
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource
from zope.interface import implementer

from txzserver.app import build_metrics, build_sites
from txzserver.bus import Event
from txzserver.bus.publishers import LocalPublisher, ZmqBus
from txzserver.bus.lag import RoundTrips
from txzserver.config import ConfigError, load
from txzserver.config.datatypes import Listener, MetricsSettings, metrics_path
from txzserver.config.settings import SettingsError
from txzserver.metrics import Readings, ServerMetrics
from txzserver.server.admission import Admission, PublishQueue
from txzserver.server.metrics import MetricsSite
from txzserver.server.request import BodyLimits
from txzserver.server.shutdown import InFlight
from txzserver.server.connection import ConnectionCounter
from txzserver.websocket.fanout import Hub, Subscriber
from txzserver.zope.instance import render_config
from txzserver.zope.metrics import ZodbCollector

from ..support.threadpools import SynchronousThreadPool
from .helpers import (
    ALPNTransport, H2Client, ThreadsReactor, connect, feed, make_settings, make_site, parse_http1,
    responses,
)
from .test_admission import Starts
from .test_health import get
from .zmqbroker import poll_readable, running_broker, wait_for

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@implementer(INegotiated)
class H2TLSTransport(ALPNTransport):
    """A TLS transport (INegotiated is an ISSLTransport) whose ALPN picked h2."""

    def __init__(self):
        super().__init__(b"h2")

    def setTcpNoDelay(self, enabled):
        pass


def samples(metrics):
    """{(sample name, frozenset of label items): value} of a scrape, parsed as Prometheus does."""
    _, body = metrics.expose()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(metrics, name, **labels):
    return samples(metrics).get((name, frozenset(labels.items())))


class Pages(Resource):
    """200 "ok" for any path, 404 for /missing."""

    isLeaf = True

    def render(self, request):
        if request.path == b"/missing":
            request.setResponseCode(404)
            return b"no such page"
        return b"ok"


@pytest.fixture
def clock(monkeypatch):
    """The requests' clock (both HTTP/1.1 parsers', HTTP/2's), advanced by hand: each
    request takes 0.2 s."""
    now = [100.0]

    def tick():
        now[0] += 0.1
        return now[0]

    monkeypatch.setattr(BodyLimits, "clock", staticmethod(tick))
    return now


# ServerMetrics and Readings

def test_request_done_counts_status_protocol_duration_and_bytes():
    metrics = ServerMetrics()
    metrics.request_done("http/1.1", 200, 0.02, sent=100)
    metrics.request_done("http/1.1", 200, 0.3, sent=50, spooled=4096)
    metrics.request_done("h2c", 404, 1.5)
    assert value(metrics, "txzserver_http_requests_total", protocol="http/1.1", status="200") == 2
    assert value(metrics, "txzserver_http_requests_total", protocol="h2c", status="404") == 1
    count = "txzserver_http_request_duration_seconds_count"
    assert value(metrics, count, protocol="http/1.1") == 2
    assert value(metrics, "txzserver_http_request_duration_seconds_bucket", protocol="http/1.1",
                 le="0.025") == 1
    assert value(metrics, "txzserver_http_request_duration_seconds_sum",
                 protocol="h2c") == pytest.approx(1.5)
    assert value(metrics, "txzserver_http_response_body_bytes_total", protocol="http/1.1") == 150
    assert value(metrics, "txzserver_http_request_spooled_bytes_total") == 4096


def test_each_server_has_its_own_registry():
    one, two = ServerMetrics(), ServerMetrics()
    one.request_done("h2", 200, 0.1)
    assert value(one, "txzserver_http_requests_total", protocol="h2", status="200") == 1
    assert value(two, "txzserver_http_requests_total", protocol="h2", status="200") is None


def test_readings_are_read_at_each_scrape(caplog):
    metrics = ServerMetrics()
    state = {"n": 1}
    metrics.readings.gauge("x_open", "Open.", lambda: state["n"])
    metrics.readings.counter("x_done", "Done.", lambda: {("a",): 3, ("b",): 4}, labels=("kind",))
    metrics.readings.gauge("x_none", "Nothing yet.", lambda: None)
    metrics.readings.gauge("x_broken", "Fails.", lambda: 1 / 0)
    assert value(metrics, "x_open") == 1
    state["n"] = 5
    found = samples(metrics)
    assert found[("x_open", frozenset())] == 5
    assert found[("x_done_total", frozenset({("kind", "a")}))] == 3
    assert found[("x_done_total", frozenset({("kind", "b")}))] == 4
    assert not any(name.startswith(("x_none", "x_broken")) for name, _ in found)
    assert "metric x_broken could not be read" in caplog.text


def test_the_process_figures_are_there():
    found = samples(ServerMetrics())
    assert found[("process_resident_memory_bytes", frozenset())] > 0
    assert found[("process_open_fds", frozenset())] > 0


def test_openmetrics_when_the_scraper_asks():
    metrics = ServerMetrics()
    content_type, body = metrics.expose("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert metrics.expose()[0].startswith("text/plain")


def test_readings_is_a_collector():
    assert list(Readings().collect()) == []


# Requests counted by a real ZopeSite (the access log hook)

def test_http11_requests_are_counted_by_status_with_their_duration(clock):
    metrics = ServerMetrics()
    site = make_site(Pages())
    site.metrics = metrics
    protocol, transport = connect(site)
    feed(protocol, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
    feed(protocol, b"GET /b HTTP/1.0\r\n\r\n")
    assert transport.value().count(b"HTTP/1.1 200") == 1
    assert value(metrics, "txzserver_http_requests_total", protocol="http/1.1", status="200") == 1
    assert value(metrics, "txzserver_http_requests_total", protocol="http/1.1", status="404") == 1
    assert value(metrics, "txzserver_http_requests_total", protocol="http/1.0", status="200") == 1
    assert value(metrics, "txzserver_http_request_duration_seconds_sum",
                 protocol="http/1.1") == pytest.approx(0.2)
    assert value(metrics, "txzserver_http_response_body_bytes_total",
                 protocol="http/1.1") == len(b"ok") + len(b"no such page")


def test_h2c_and_h2_requests_are_counted_as_such():
    metrics = ServerMetrics()
    site = make_site(Pages(), h2c=True)
    site.metrics = metrics
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.request(1, path="/a")
    client.request(3, path="/missing")
    client.flush()
    assert {sid: r["status"] for sid, r in responses(client.events()).items()} == {1: 200, 3: 404}
    protocol, transport = connect(site, H2TLSTransport())
    client = H2Client(protocol, transport, site.reactor)
    client.request(1, path="/tls")
    client.flush()
    assert responses(client.events())[1]["status"] == 200
    assert value(metrics, "txzserver_http_requests_total", protocol="h2c", status="200") == 1
    assert value(metrics, "txzserver_http_requests_total", protocol="h2c", status="404") == 1
    assert value(metrics, "txzserver_http_requests_total", protocol="h2", status="200") == 1
    assert value(metrics, "txzserver_http_request_duration_seconds_count", protocol="h2c") == 2


def test_a_spooled_body_is_counted():
    metrics = ServerMetrics()
    site = make_site(Pages(), request_spool_threshold=1024)
    site.metrics = metrics
    protocol, _ = connect(site)
    body = b"x" * 5000
    feed(protocol, b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + body
         + b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert value(metrics, "txzserver_http_request_spooled_bytes_total") == 5000


def test_a_site_without_metrics_still_logs():
    site = make_site(Pages())
    protocol, transport = connect(site)
    feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parse_http1(transport.value())[0] == 200


# Connections by protocol, idle, evicted, refused

def test_connections_by_protocol():
    site = make_site(Pages(), h2c=True)
    counter = site.counter
    plain, _ = connect(site)
    h2c, _ = connect(site)
    feed(h2c, H2_PREFACE)
    h2, _ = connect(site, H2TLSTransport())
    feed(h2, H2_PREFACE)
    assert counter.by_protocol() == {("http/1.1",): 1, ("h2c",): 1, ("h2",): 1}
    h2c.connectionLost(None)
    assert counter.by_protocol() == {("http/1.1",): 1, ("h2",): 1}
    plain.transport.loseConnection()
    plain.connectionLost(None)
    h2.connectionLost(None)
    assert counter.by_protocol() == {}
    assert counter.open == 0


def test_evicted_and_refused_connections_are_counted():
    site = make_site(Pages(), max_connections=1)
    connect(site)
    connect(site)  # the first one was idle: evicted
    assert (site.counter.evicted, site.counter.refused) == (1, 0)
    head, _ = connect(site)  # evicts the second
    feed(head, b"GET / HTTP/1.1\r\n")  # reading a head: still makes room
    body, _ = connect(site)  # evicts it
    feed(body, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")  # a body
    connect(site)  # nothing to evict: 503
    assert (site.counter.evicted, site.counter.refused) == (3, 1)


# The publisher pool, admission and the other server readings (app.build_sites)

def test_server_readings_of_a_real_pool_and_admission():
    settings = make_settings(threads=2, max_connections=7)
    pool = ThreadPool(1, 1, name="test-publisher")
    metrics = ServerMetrics()
    tracker = InFlight()
    sites = build_sites(ThreadsReactor(), pool, None, settings, tracker, metrics=metrics)
    site = sites[0][1]
    assert site.metrics is metrics
    connect(site)
    tracker.started()
    release = threading.Event()
    running = threading.Event()

    def hold():
        running.set()
        release.wait(10)

    pool.callInThread(hold)
    pool.callInThread(lambda: None)
    pool.start()
    try:
        assert running.wait(10)
        found = samples(metrics)
        assert found[("txzserver_publisher_threads", frozenset())] == 2
        assert found[("txzserver_publisher_threads_busy", frozenset())] == 1
        assert found[("txzserver_publisher_queued", frozenset())] == 1
        assert found[("txzserver_http_connections", frozenset({("protocol", "http/1.1")}))] == 1
        assert found[("txzserver_http_connections_idle", frozenset())] == 1
        assert found[("txzserver_http_connections_max", frozenset())] == 7
        assert found[("txzserver_http_requests_in_flight", frozenset())] == 1
        assert found[("txzserver_publisher_held", frozenset())] == 0
    finally:
        release.set()
        pool.stop()


def test_admission_counts_held_and_dropped_requests_over_connections():
    totals = Admission()
    starts = Starts()
    one, two = PublishQueue(1, totals), PublishQueue(1, totals)
    gone = set()
    for queue, names in ((one, "abc"), (two, "xy")):
        for name in names:
            queue.submit(starts.make(name), lambda n=name: n in gone)
    assert (totals.held, totals.dropped) == (3, 0)
    gone.add("b")
    starts.deferreds[0].callback(None)  # a leaves: b is gone, c starts
    assert starts.started == ["a", "x", "c"]
    assert (totals.held, totals.dropped) == (1, 1)
    assert one.dropped == 1


# The metrics listener

def test_metrics_site_answers_the_configured_path_only():
    metrics = ServerMetrics()
    metrics.request_done("http/1.1", 200, 0.1)
    site = MetricsSite(metrics, "/internal/prom", reactor=ThreadsReactor())
    code, headers, body = parse_http1(get(site, b"GET /internal/prom HTTP/1.1\r\nHost: x\r\n\r\n")[1])
    assert code == 200
    assert headers[b"content-type"].startswith(b"text/plain; version=")
    assert b'txzserver_http_requests_total{protocol="http/1.1",status="200"} 1.0' in body
    code, _, body = parse_http1(get(site, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")[1])
    assert (code, body) == (404, b"not found: metrics are at /internal/prom\n")
    code, headers, _ = parse_http1(get(site, b"POST /internal/prom HTTP/1.1\r\nHost: x\r\n"
                                             b"Content-Length: 0\r\n\r\n")[1])
    assert (code, headers[b"allow"]) == (405, b"GET, HEAD")


def test_metrics_site_writes_no_access_log(caplog):
    site = MetricsSite(ServerMetrics(), reactor=ThreadsReactor())
    with caplog.at_level("INFO", logger="access"):
        get(site, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not [r for r in caplog.records if r.name == "access"]


# Event bus, hub and ZODB readings (app.build_metrics)

class Found:
    def __init__(self, db):
        self.db = db

    def __call__(self):
        return {"main": self.db}


def test_build_metrics_reads_the_bus_the_hub_and_the_zodb():
    reactor = ThreadsReactor()
    hub = Hub()
    publisher = LocalPublisher(reactor, hub)
    sent = []
    hub.add(Subscriber({"Member"}, {"/Plone"}, sent.append))
    hub.add(Subscriber({"Anonymous"}, {"/Plone"}, sent.append))
    publisher.publish([Event("modified", "/Plone/a", guard={"Member"}),
                       Event("created", "/Plone/b", guard={"Member", "Anonymous"})])
    hub.deliver(Event("modified", "/Plone/c", guard={"Member"}, instance="i", epoch="e", seq=2))
    hub.deliver(Event("modified", "/Plone/c", guard={"Member"}, instance="i", epoch="e", seq=2))
    db = ZODB.DB(None, pool_size=3, cache_size=500)
    try:
        manager = transaction.TransactionManager()
        connection = db.open(manager)
        connection.root()["x"] = PersistentMapping()
        manager.commit()
        settings = make_settings(metrics=MetricsSettings(Listener("metrics", "", 0), "/m"))
        metrics = ServerMetrics()
        site = build_metrics(reactor, metrics, settings, hub, publisher, ZodbCollector(Found(db)))
        assert site.resource.path == b"/m"
        found = samples(metrics)
        assert found[("txzserver_events_published_total", frozenset())] == 2
        assert found[("txzserver_events_delivered_total", frozenset())] == 4
        assert found[("txzserver_events_dropped_total", frozenset({("reason", "duplicate")}))] == 1
        assert found[("txzserver_events_gaps_total", frozenset())] == 0
        assert found[("txzserver_websocket_subscribers", frozenset())] == 2
        assert ("txzserver_bus_lag_seconds", frozenset()) not in found  # no bus: no lag
        main = frozenset({("database", "main")})
        assert found[("txzserver_zodb_pool_size", main)] == 3
        assert found[("txzserver_zodb_cache_size", main)] == 500
        assert found[("txzserver_zodb_connections", main)] == 1
        assert found[("txzserver_zodb_connections_idle", main)] == 0
        assert found[("txzserver_zodb_cache_objects", main)] >= 1
        assert found[("txzserver_zodb_cache_entries", main)] >= found[("txzserver_zodb_cache_objects", main)]
        assert ("txzserver_zodb_connected", main) not in found  # a MappingStorage has no server
        connection.close()
        assert value(metrics, "txzserver_zodb_connections_idle", database="main") == 1
    finally:
        db.close()


def test_zodb_collector_before_zope_started():
    assert list(ZodbCollector(dict).collect()) == []


# Configuration

def test_metrics_path_datatype():
    assert metrics_path(" /metrics/ ") == "/metrics"
    assert metrics_path("/internal/prom") == "/internal/prom"
    for bad in ("metrics", "//x", "/a b", "/m?x=1"):
        with pytest.raises(ValueError):
            metrics_path(bad)


def test_metrics_listener_may_not_share_a_port():
    with pytest.raises(SettingsError, match="<metrics-server> and another server section"):
        make_settings(metrics=MetricsSettings(Listener("metrics", "127.0.0.1", 8080)))


def test_load_config_with_metrics_server_and_json_logs(tmp_path):
    for sub in ("etc", "var", "log"):
        (tmp_path / sub).mkdir()
    text = render_config(str(tmp_path))
    assert "# <metrics-server>" in text and "# log-format json" in text
    path = tmp_path / "etc" / "zope.conf"
    path.write_text(text)
    _, settings = load(str(path))
    assert (settings.metrics, settings.log_format) == (None, "text")
    enabled = (text.replace("# <metrics-server>", "<metrics-server>")
               .replace("#   address 8082", "  address 8082")
               .replace("#   path /metrics", "  path /internal/prom/")
               .replace("# </metrics-server>", "</metrics-server>")
               .replace("# log-format json", "log-format JSON"))
    path.write_text(enabled)
    _, settings = load(str(path))
    assert settings.metrics == MetricsSettings(Listener("metrics", "", 8082), "/internal/prom")
    assert settings.log_format == "json"
    path.write_text(enabled.replace("log-format JSON", "log-format yaml"))
    with pytest.raises(ConfigError, match="log-format must be one of text, json"):
        load(str(path))
    path.write_text(enabled.replace("  address 8082", "  address 8080"))
    with pytest.raises(ConfigError, match="<metrics-server> and another server section both listen"):
        load(str(path))


def test_build_sites_without_metrics():
    """No <metrics-server>: nothing is counted (and no real pool is needed)."""
    sites = build_sites(ThreadsReactor(), SynchronousThreadPool(), None, make_settings(), InFlight())
    assert sites[0][1].metrics is None
    assert isinstance(sites[0][1].counter, ConnectionCounter)


# The event bus: published, received, the lag of its own events through a real broker

def test_bus_counts_and_lag_through_a_real_broker(tmp_path):
    with running_broker(tmp_path) as broker:
        hub = Hub()
        bus = ZmqBus(MemoryReactorClock(), hub, broker.frontend, broker.backend, instance="alpha")
        try:
            assert bus.lag is None

            def pump():
                bus.publish([Event("notification", "/probe", guard={"nobody"})])
                poll_readable([bus.sub], 50)
                bus.doRead()

            wait_for(lambda: bus.lag is not None, pump, what="an own event back from the broker")
            assert 0 < bus.lag < 10
            assert bus.received >= 1 and bus.sent >= bus.received
            assert bus.dropped == 0
            assert len(bus.round_trips) <= RoundTrips.SAMPLES
        finally:
            bus.close()
