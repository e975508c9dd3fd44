"""The health endpoints of a real `txzserver serve`, a ZEO client of a real ZEO server holding
the Plone site, on a real event-bus broker: ready while ZEO serves, still ready but "degraded"
while it is down (live stays ok), not degraded when it is back; the same while the broker is
away (tests/integration/test_degraded.py: two instances, writes and cached pages); live fails
while every publisher thread is stuck longer than stuck-after; SIGTERM fails ready at once while
a download in flight completes. What was measured goes to tests/results/health.json.
"""

import json
import signal
import threading
import time

import httpx
import pytest

from tests.support.cluster import zeo_storage
from tests.support.instance import ADMIN, ROOT, TXZSERVER, http_server, new_instance, with_task_views
from tests.support.server import ServerProcess, wait_for
from tests.support.slow import SlowReader

RESULTS = ROOT / "tests" / "results" / "health.json"
STUCK_AFTER = 2
HEALTH = f"""server-threads 2
shutdown-timeout 60s
<health-server>
  address 127.0.0.1:0
  stuck-after {STUCK_AFTER}s
  check-interval 1s
</health-server>
"""


@pytest.fixture(scope="module")
def results():
    found = {}
    yield found
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def instance(tmp_path_factory, zeo, broker, site_id):
    directory = tmp_path_factory.mktemp("health-instance")
    bus = f"<event-bus>\n  publish {broker.publish}\n  subscribe {broker.subscribe}\n</event-bus>\n"
    conf = new_instance(directory, http_server(0), HEALTH + bus, storage=zeo_storage(zeo.address))
    argv = [TXZSERVER, "serve", str(conf), "--site", site_id]  # readiness looks for the site
    server = ServerProcess(conf, argv=argv, env=with_task_views(conf)).start()
    yield server
    server.stop()


def probe(server, name):
    """(status, JSON body) of /healthz/NAME; (None, None) when nothing answers."""
    try:
        response = httpx.get(f"http://127.0.0.1:{server.ports['health']}/healthz/{name}", timeout=5)
    except httpx.TransportError:
        return None, None
    return response.status_code, response.json()


def time_until(server, name, code, timeout, interval=0.05):
    """Seconds until /healthz/NAME answers ``code``; its body."""
    begin = time.monotonic()
    body = wait_for(lambda: (lambda c, b: b if c == code else None)(*probe(server, name)), timeout,
                    interval, what=f"/healthz/{name} to answer {code}")
    return time.monotonic() - begin, body


def wait_for_body(server, want, timeout):
    """Seconds until /healthz/ready answers 200 with a body ``want(body)`` holds for; the body.
    Every answer on the way must be 200: a lost dependency never makes the instance unready."""
    begin = time.monotonic()

    def wanted():
        code, body = probe(server, "ready")
        assert code == 200, body
        return body if want(body) else None

    body = wait_for(wanted, timeout, 0.05, what="/healthz/ready to answer as wanted")
    return time.monotonic() - begin, body


def test_probes_answer_ok_on_a_zeo_client(instance, site_id, results):
    seconds, body = wait_for_body(instance, lambda b: b["status"] == "ok", 10)
    assert set(body["checks"]) == {"zope", "shutdown", "publisher-pool", "database", "event-bus"}
    assert body["checks"]["database"]["site"] == site_id
    assert probe(instance, "startup") == (200, {"status": "ok", "checks": {
        "zope": {"status": "ok", "site": site_id}}})
    assert probe(instance, "live")[0] == 200
    assert httpx.get(instance.url(f"/{site_id}"), timeout=30).status_code == 200
    results["ready_after_listening_s"] = round(seconds, 3)


def test_ready_stays_while_zeo_is_down_degraded(instance, zeo, results):
    time_until(instance, "ready", 200, 10)
    zeo.stop()
    stopped = time.monotonic()
    try:
        seconds, body = wait_for_body(instance, lambda b: b["status"] == "degraded", 10)
        check = body["checks"]["database"]
        assert check["status"] == "degraded"
        assert check["reason"] == "not connected to the storage server: main"
        assert body["checks"]["publisher-pool"]["status"] == "ok"
        for _ in range(10):
            assert probe(instance, "live")[0] == 200
            assert probe(instance, "ready")[0] == 200
            time.sleep(0.2)
        results["ready_degraded_after_zeo_stop_s"] = round(seconds, 3)
    finally:
        zeo.start()
    restarted = time.monotonic()
    seconds, _ = wait_for_body(instance, lambda b: b["status"] == "ok", 30)
    results["ready_ok_after_zeo_start_s"] = round(seconds, 3)
    results["zeo_down_s"] = round(restarted - stopped, 3)


def test_ready_stays_while_the_broker_is_down_degraded(instance, broker, results):
    time_until(instance, "ready", 200, 10)
    broker.stop()
    try:
        seconds, body = wait_for_body(instance, lambda b: b["status"] == "degraded", 10)
        check = body["checks"]["event-bus"]
        assert check["status"] == "degraded" and check["reason"].startswith("not connected to ipc://")
        assert check["links"] == {broker.publish: "down", broker.subscribe: "down"}
        assert probe(instance, "live")[0] == 200
        results["ready_degraded_after_broker_stop_s"] = round(seconds, 3)
    finally:
        broker.start()
    seconds, body = wait_for_body(instance, lambda b: b["status"] == "ok", 30)
    assert body["checks"]["event-bus"]["links"] == {broker.publish: "up", broker.subscribe: "up"}
    results["ready_ok_after_broker_start_s"] = round(seconds, 3)


def test_live_fails_while_every_publisher_thread_is_stuck(instance, site_id, results):
    time_until(instance, "live", 200, 10)
    answers = []

    def slow(name):
        answers.append(httpx.get(instance.url(f"/{site_id}/@@test-task-slow"), auth=ADMIN,
                                 params={"seconds": 4 * STUCK_AFTER, "name": name}, timeout=60))

    threads = [threading.Thread(target=slow, args=(f"stuck{i}",)) for i in range(2)]
    begin = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both requests reach their threads before the first canary
    seconds, body = time_until(instance, "live", 503, 4 * STUCK_AFTER)
    seconds += 0.5
    check = body["checks"]["publisher-pool"]
    assert "every publisher thread busy for longer than stuck-after (2s)" in check["reason"]
    assert STUCK_AFTER < seconds < 3 * STUCK_AFTER
    assert probe(instance, "ready")[0] == 503  # a stuck pool is not ready either
    assert probe(instance, "startup")[0] == 200
    for thread in threads:
        thread.join(60)
    assert [a.status_code for a in answers] == [200, 200]
    recovered, _ = time_until(instance, "live", 200, 10)
    results["live_503_after_pool_stuck_s"] = round(seconds, 3)
    results["live_200_after_threads_free_s"] = round(recovered, 3)
    results["slow_requests_s"] = round(time.monotonic() - begin, 3)


def test_sigterm_fails_ready_at_once_while_a_download_completes(instance, big_file, results):
    time_until(instance, "ready", 200, 10)
    reader = SlowReader(instance.port, big_file["path"] + "/@@download/file", rate=25_000_000,
                        timeout=60)
    reader.start()
    assert reader.started_body.wait(60) and reader.status == 200, reader.error
    instance.process.send_signal(signal.SIGTERM)
    seconds, body = time_until(instance, "ready", 503, 5, interval=0.01)
    assert body["checks"]["shutdown"]["reason"].startswith("shutting down")
    assert body["checks"]["shutdown"]["in_flight"] == 1
    assert probe(instance, "live")[0] == 200  # draining is not dead
    assert reader.is_alive(), "the download ended before the drain was seen"
    received_at_503 = reader.received
    reader.join(60)
    assert reader.error is None
    assert reader.received == big_file["size"]
    assert instance.process.wait(60) == 0
    results["ready_503_after_sigterm_s"] = round(seconds, 3)
    results["download_left_at_sigterm_bytes"] = big_file["size"] - received_at_503
