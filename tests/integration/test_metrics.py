"""Prometheus metrics and JSON logs of a real `txzserver serve` on a copy of the shared Plone
site: a bounded load (50 requests over HTTP/1.1 and 20 over h2c, some of them 404) moves the
counters by exactly what the clients did; the histogram counts them; the connections gauge
sees the clients' connections by protocol; the path is configurable and the metrics are not
reachable under the Zope tree; with `log-format json` every event log line and every access
line is a JSON object carrying its fields."""

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import wait_for

PATH = "/internal/prom"
CONF = f"""log-format json
<metrics-server>
  address 127.0.0.1:0
  path {PATH}/
</metrics-server>
"""
HTTP1_OK, HTTP1_MISSING, H2C_OK, H2C_MISSING = 40, 10, 15, 5


@pytest.fixture(scope="module")
def server(servers):
    """Our own server (2 publisher threads): nobody else's requests move its counters."""
    return servers.start("metrics", threads=2, extra=CONF)


def scrape(server):
    """{(name, frozenset of label items): value} of one scrape of the metrics listener."""
    answer = httpx.get(server.url(PATH, kind="metrics"), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def delta(before, after, name, **labels):
    key = (name, frozenset(labels.items()))
    return after.get(key, 0) - before.get(key, 0)


def load(client, base, ok, missing, tag):
    """``ok`` requests for Plone's ok view, ``missing`` for pages that are not there; returns
    the body bytes the client received."""
    received = 0
    for i in range(ok + missing):
        path = f"/Plone/ok?{tag}={i}" if i < ok else f"/Plone/no-such-page-{tag}-{i}"
        answer = client.get(base + path, headers={"accept-encoding": "identity"})
        assert answer.status_code == (200 if i < ok else 404), (path, answer.status_code)
        received += answer.num_bytes_downloaded
    return received


def test_counters_match_what_the_clients_did(server):
    base = server.url("")
    before = scrape(server)
    with httpx.Client(timeout=30) as http1, httpx.Client(http1=False, http2=True, timeout=30) as h2c:
        sent1 = load(http1, base, HTTP1_OK, HTTP1_MISSING, "h1")
        sent2 = load(h2c, base, H2C_OK, H2C_MISSING, "h2c")
        during = scrape(server)
        # Both clients keep their one connection open: the gauge sees them, by protocol.
        assert during[("txzserver_http_connections", frozenset({("protocol", "http/1.1")}))] == 1
        assert during[("txzserver_http_connections", frozenset({("protocol", "h2c")}))] == 1
    requests = "txzserver_http_requests_total"
    assert delta(before, during, requests, protocol="http/1.1", status="200") == HTTP1_OK
    assert delta(before, during, requests, protocol="http/1.1", status="404") == HTTP1_MISSING
    assert delta(before, during, requests, protocol="h2c", status="200") == H2C_OK
    assert delta(before, during, requests, protocol="h2c", status="404") == H2C_MISSING
    count = "txzserver_http_request_duration_seconds_count"
    assert delta(before, during, count, protocol="http/1.1") == HTTP1_OK + HTTP1_MISSING
    assert delta(before, during, count, protocol="h2c") == H2C_OK + H2C_MISSING
    assert delta(before, during, "txzserver_http_request_duration_seconds_bucket",
                 protocol="h2c", le="+Inf") == H2C_OK + H2C_MISSING
    assert delta(before, during, "txzserver_http_request_duration_seconds_sum", protocol="h2c") > 0
    body = "txzserver_http_response_body_bytes_total"
    assert delta(before, during, body, protocol="http/1.1") == sent1
    assert delta(before, during, body, protocol="h2c") == sent2
    assert during[("txzserver_http_requests_in_flight", frozenset())] == 0
    assert during[("txzserver_publisher_threads", frozenset())] == 2
    assert during[("txzserver_publisher_threads_busy", frozenset())] <= 2
    assert during[("txzserver_http_connections_max", frozenset())] == 1000
    main = frozenset({("database", "main")})
    assert during[("txzserver_zodb_pool_size", main)] == 7  # ZODB's default pool-size
    assert during[("txzserver_zodb_connections", main)] >= 1
    assert during[("txzserver_zodb_cache_objects", main)] > 0
    assert during[("txzserver_events_published_total", frozenset())] == 0
    assert during[("txzserver_websocket_subscribers", frozenset())] == 0
    assert during[("process_resident_memory_bytes", frozenset())] > 10 * 2**20
    assert during[("process_open_fds", frozenset())] > 0
    # The clients closed their connections: the gauge goes back to none.
    wait_for(lambda: not any(name == "txzserver_http_connections" and value
                             for (name, _), value in scrape(server).items()),
             10, what="the connections gauge to drop to 0")


def test_the_path_is_configurable_and_not_under_the_zope_tree(server):
    metrics_port = server.url("/metrics", kind="metrics")
    answer = httpx.get(metrics_port, timeout=10)
    assert answer.status_code == 404
    assert PATH in answer.text
    for path in (PATH, "/metrics", f"/Plone{PATH}"):
        answer = httpx.get(server.url(path), timeout=30)
        assert answer.status_code == 404, path
        assert "txzserver_http_requests_total" not in answer.text
    assert scrape(server)  # the scrape itself is not counted as a request: see the first test


def test_event_and_access_logs_are_json_lines(server):
    with httpx.Client(http1=False, http2=True, timeout=30) as client:
        assert client.get(server.url("/Plone/ok?json-log=1"),
                          headers={"user-agent": "json-probe/1", "referer": "http://ref.example/"}
                          ).status_code == 200

    def access_line():
        for line in (server.instance / "log" / "access.log").read_text().splitlines():
            entry = json.loads(line)
            if entry["path"] == "/Plone/ok?json-log=1":
                return entry
        return None

    entry = wait_for(access_line, 10, what="the access line")
    assert (entry["logger"], entry["level"], entry["method"], entry["status"]) == (
        "access", "INFO", "GET", 200)
    assert (entry["protocol"], entry["user_agent"], entry["referer"], entry["client"]) == (
        "h2c", "json-probe/1", "http://ref.example/", "127.0.0.1")
    assert entry["bytes"] > 0 and 0 < entry["duration"] < 30
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]
    assert '"GET /Plone/ok?json-log=1 HTTP/2" 200' in entry["message"]
    lines = (server.instance / "log" / "event.log").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(events[0])
    ready = [e for e in events if e["message"].startswith("txzserver ready")]
    assert ready and ready[0]["level"] == "INFO" and ready[0]["logger"] == "txzserver"
    assert any(e["message"].startswith("txzserver metrics listening on http://127.0.0.1:")
               for e in events)
