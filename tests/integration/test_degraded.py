"""A shared dependency lost never empties the site: two real `txzserver serve` instances on a
real ZEO server (then on RelStorage on a real PostgreSQL) and a real event-bus broker; one on
a real nats-server (the nats bus backend).

While ZEO, PostgreSQL, the broker or NATS is stopped, both instances' /healthz/ready keep answering
200 with "degraded" naming the dependency and since when (every answer seen is 200), the
metric txzserver_dependency_up says 0; pages warmed before are served from the ZODB caches;
a write (plone.restapi PATCH) is answered 503 with Retry-After and a reason well within 2 s;
a read of an object the instance never loaded fails with 503 too, bounded by storage-wait,
not ZEO's 30 s; HAProxy on the compose front's config/haproxy.cfg keeps sending pages to both
instances (its readiness checks take neither out). Once the dependency is back, writes work
again without a restart and "degraded" is gone. What was measured goes to tests/results/degraded.json.
"""

import json
import os
import ssl
import subprocess
import time

from types import SimpleNamespace

import httpx
import pytest
import ZEO
from ZEO.ClientStorage import ClientStorage
from ZEO.Exceptions import ClientDisconnected
from ZODB.utils import p64

from tests.support import haproxy
from tests.support.cluster import zeo_storage
from tests.support.instance import ADMIN, BIG_FILE_ID, ROOT, SITE_ID, http_server, new_instance
from tests.support.nats import NatsServer
from tests.support.postgresql import STORAGE_CONF, relstorage_environment
from tests.support.server import ServerProcess, wait_for
from txzserver.zope.storagedown import set_zeo_wait

pytestmark = pytest.mark.timeout(600)

RESULTS = ROOT / "tests" / "results" / "degraded.json"
#: storage-wait: how long a request may wait for a lost storage server
STORAGE_WAIT = 1.0
#: the contract: a write while the database is down is answered 503 within this
WRITE_CEILING = 2.0
CONF = f"""server-threads 2
<health-server>
  address 127.0.0.1:0
  check-interval 1s
  storage-wait {STORAGE_WAIT:g}s
</health-server>
<metrics-server>
  address 127.0.0.1:0
</metrics-server>
"""


@pytest.fixture(scope="module")
def results():
    found = {}
    yield found
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")


def start_pair(directory, storage, extra="", env=None):
    """Two instances, a and b, on ``storage``; ``env(directory)``: a server's environment."""
    servers = []
    try:
        for name in ("a", "b"):
            conf = new_instance(directory / name, http_server(0),
                                f"{CONF}instance-name {name}\n{extra}", storage=storage)
            servers.append(ServerProcess(conf, env=env(directory / name) if env else None).start())
    except BaseException:
        stop_all(servers)
        raise
    return servers


def stop_all(servers):
    for server in servers:
        server.stop()


def ready(server):
    """(status, JSON body) of /healthz/ready."""
    response = httpx.get(f"http://127.0.0.1:{server.ports['health']}/healthz/ready", timeout=10)
    return response.status_code, response.json()


def dependency_up(server, name):
    """txzserver_dependency_up{dependency=name} as the metrics listener says it."""
    text = httpx.get(f"http://127.0.0.1:{server.ports['metrics']}/metrics", timeout=10).text
    line = f'txzserver_dependency_up{{dependency="{name}"}} '
    values = [float(row[len(line):]) for row in text.splitlines() if row.startswith(line)]
    assert len(values) == 1, text
    return values[0]


class ReadyWatch:
    """Polls both instances' readiness until ``want(body)`` holds for each; keeps every code."""

    def __init__(self, servers):
        self.servers = servers
        self.codes = []

    def until(self, want, timeout, what):
        def all_want():
            bodies = []
            for server in self.servers:
                code, body = ready(server)
                self.codes.append(code)
                bodies.append(body if want(body) else None)
            return bodies if all(b is not None for b in bodies) else None
        begin = time.monotonic()
        bodies = wait_for(all_want, timeout, 0.1, what=what)
        return time.monotonic() - begin, bodies


def degraded_by(name):
    return lambda body: (body["status"] == "degraded"
                         and body["checks"][name]["status"] == "degraded")


def all_ok(body):
    return body["status"] == "ok"


def page(server, path=f"/{SITE_ID}"):
    return httpx.get(server.url(path), timeout=60)


def patch_title(server, title):
    """plone.restapi PATCH of the File's title; (response, seconds it took)."""
    begin = time.monotonic()
    response = httpx.patch(server.url(f"/{SITE_ID}/{BIG_FILE_ID}"), json={"title": title},
                           headers={"Accept": "application/json"}, auth=ADMIN, timeout=120)
    return response, time.monotonic() - begin


def title_of(server):
    response = httpx.get(server.url(f"/{SITE_ID}/{BIG_FILE_ID}"), auth=ADMIN, timeout=60,
                         headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text[:500]
    return response.json()["title"]


def create_document(server, doc_id):
    response = httpx.post(server.url(f"/{SITE_ID}"), auth=ADMIN, timeout=60,
                          headers={"Accept": "application/json"},
                          json={"@type": "Document", "id": doc_id, "title": doc_id})
    assert response.status_code == 201, response.text[:500]


def warm(servers):
    """Pages (and the write's path) read once on each instance: now in its ZODB caches."""
    for server in servers:
        for _ in range(2):
            assert page(server).status_code == 200
            assert title_of(server)


def assert_write_refused(server, title, results, key):
    response, seconds = patch_title(server, title)
    assert response.status_code == 503, (response.status_code, response.text[:500])
    assert response.headers["retry-after"] == "10"
    assert "database is unavailable" in response.text
    assert seconds < WRITE_CEILING, seconds
    results.setdefault(key, []).append(round(seconds, 3))
    assert "503 for PATCH" in server.log_text()  # the log line


def writes_work_again(servers, title, timeout=60):
    """Seconds until a PATCH on each instance succeeds (the storage back, no restart)."""
    begin = time.monotonic()
    for server in servers:
        wait_for(lambda: patch_title(server, title)[0].status_code == 204, timeout, 0.5,
                 what="a write to succeed again")
    for server in servers:
        wait_for(lambda: title_of(server) == title, 30, 0.2, what="the new title on each instance")
    return time.monotonic() - begin


@pytest.fixture(scope="module")
def zeo_servers(tmp_path_factory, zeo, broker):
    bus = f"<event-bus>\n  publish {broker.publish}\n  subscribe {broker.subscribe}\n</event-bus>\n"
    pair = start_pair(tmp_path_factory.mktemp("degraded-zeo-instances"), zeo_storage(zeo.address),
                      extra=bus)
    yield pair
    stop_all(pair)


def render_front(config, pem, port, monitor, servers):
    """config/haproxy.cfg (the compose front) for loopback: instanceN is servers[N-1], its
    health check on that instance's health port (``port`` on the server line)."""
    text = config.replace("/etc/haproxy/certs/front.pem", str(pem))
    text = text.replace("bind :8443 ", f"bind 127.0.0.1:{port} ")
    text = text.replace("bind 127.0.0.1:8404", f"bind 127.0.0.1:{monitor}")
    assert "check port 8081 " in text
    text = text.replace("check port 8081 ", "check ")
    for number, server in enumerate(servers, 1):
        text = text.replace(f"server instance{number} instance{number}:8080 maxconn 8",
                            f"server instance{number} 127.0.0.1:{server.port} maxconn 8"
                            f" port {server.ports['health']}")
        text = text.replace(f"instance{number}:8080", f"127.0.0.1:{server.port}")
    return text.replace(" resolvers docker", "")


@pytest.fixture(scope="module")
def front(zeo_servers, tmp_path_factory):
    """Debian's HAProxy on the compose front's config in front of the two ZEO instances; its
    log (``log``) says when it takes a server out."""
    directory = tmp_path_factory.mktemp("degraded-front")
    env = dict(os.environ, SERVER_NAMES="localhost 127.0.0.1", HSTS_MAX_AGE="0")
    subprocess.run(["sh", str(ROOT / "compose" / "dev-certs.sh"), str(directory)], env=env,
                   check=True, capture_output=True)
    config = directory / "haproxy.cfg"
    log_path = directory / "haproxy.log"

    def write_config(ports):
        config.write_text(render_front((ROOT / "config" / "haproxy.cfg").read_text(),
                                       directory / "front.pem", ports["https"], ports["monitor"],
                                       zeo_servers))
        return config

    process, ports = haproxy.start(write_config, env, log_path)
    port = ports["https"]
    client = httpx.Client(verify=ssl.create_default_context(cafile=str(directory / "ca.crt")),
                          timeout=60, base_url=f"https://127.0.0.1:{port}",
                          headers={"Host": "localhost"})
    try:
        yield SimpleNamespace(client=client, log=log_path, process=process)
    finally:
        client.close()
        haproxy.stop(process)


def front_serves_from_both(front, servers):
    """True once pages through the front came from each instance (by their access logs)."""
    marker = f"via-front-{time.monotonic_ns()}"
    for _ in range(6):
        assert front.client.get(f"/{SITE_ID}", params={"m": marker}).status_code == 200
    return all(marker in (server.instance / "log" / "access.log").read_text(errors="replace")
               for server in servers)


@pytest.fixture(scope="module")
def relstorage_servers(tmp_path_factory, shared_postgresql, relstorage_template):
    dsn = shared_postgresql.create_database("degraded",
                                            template=relstorage_template["template_database"])
    pair = start_pair(tmp_path_factory.mktemp("degraded-relstorage"), f"%include {STORAGE_CONF}",
                      env=lambda directory: relstorage_environment(dsn, directory / "var"))
    yield pair
    stop_all(pair)


def assert_uncached_read_fails_fast(server, path, results, key):
    """An object this instance never loaded: 503 after a few loads, each cut to storage-wait
    (ZEO) or refused at once (PostgreSQL), and no retries; not ZEO's 30 s."""
    begin = time.monotonic()
    response = page(server, path)
    seconds = time.monotonic() - begin
    assert response.status_code == 503, response.status_code
    assert response.headers["retry-after"] == "10"
    assert seconds < 4 * STORAGE_WAIT, seconds
    results[key] = round(seconds, 3)


def test_zeo_waits_for_a_lost_server_only_storage_wait():
    """A real ClientStorage connected to a real ZEO server (ZEO.server, in this process) that
    stops: an uncached load fails after the configured wait, not ZEO's own 30 s."""
    address, stop_server = ZEO.server()
    storage = ClientStorage(address, wait=True)
    try:
        assert set_zeo_wait(STORAGE_WAIT, {"main": SimpleNamespace(storage=storage)}) == ["main"]
        stop_server()
        wait_for(lambda: not storage.is_connected(), 30, 0.05, what="ZEO client to see the loss")
        begin = time.monotonic()
        with pytest.raises(ClientDisconnected):
            storage.load(p64(12345))
        waited = time.monotonic() - begin
        assert STORAGE_WAIT * 0.9 < waited < 10 * STORAGE_WAIT, waited
    finally:
        storage.close()


def test_zeo_down_degrades_serves_cached_pages_and_refuses_writes_fast(zeo_servers, zeo, front,
                                                                      results):
    servers = zeo_servers
    watch = ReadyWatch(servers)
    watch.until(all_ok, 60, "both instances ready and not degraded")
    wait_for(lambda: front_serves_from_both(front, servers), 60, 0.5,
             what="the front to send pages to both instances")
    create_document(servers[0], "made-before-zeo-stop")  # instance b never reads it
    warm(servers)
    zeo.stop()
    try:
        seconds, bodies = watch.until(degraded_by("database"), 30, "degraded: database")
        results["zeo_degraded_after_s"] = round(seconds, 3)
        for body in bodies:
            database = body["checks"]["database"]
            assert database["reason"] == "not connected to the storage server: main"
            assert database["since"].endswith("+00:00") and database["down_for"] >= 0
            assert body["checks"]["zope"]["status"] == "ok"
        for server in servers:
            assert dependency_up(server, "database") == 0
            assert dependency_up(server, "event-bus") == 1
            assert page(server).status_code == 200  # from the ZODB caches
            assert_write_refused(server, "written while ZEO is down", results, "zeo_write_503_s")
        assert_uncached_read_fails_fast(servers[1], f"/{SITE_ID}/made-before-zeo-stop", results,
                                        "zeo_uncached_read_503_s")
        for server in servers:  # after all of this, still serving what it has
            assert page(server).status_code == 200
        watch.until(degraded_by("database"), 10, "still degraded")
        # the front's checks (2 s apart, out after 2 failures) have run several times by now
        assert front_serves_from_both(front, servers)
        assert " is DOWN" not in front.log.read_text(), front.log.read_text()[-2000:]
    finally:
        zeo.start()
    seconds, _ = watch.until(all_ok, 60, "both ready and not degraded again")
    results["zeo_ok_after_restart_s"] = round(seconds, 3)
    results["zeo_writes_again_after_s"] = round(writes_work_again(servers, "after ZEO"), 3)
    assert set(watch.codes) == {200}, "an instance answered not ready"
    for server in servers:
        assert dependency_up(server, "database") == 1


def test_broker_down_degrades_names_the_event_bus(zeo_servers, broker, results):
    servers = zeo_servers
    watch = ReadyWatch(servers)
    watch.until(all_ok, 60, "both instances ready and not degraded")
    broker.stop()
    try:
        seconds, bodies = watch.until(degraded_by("event-bus"), 30, "degraded: event-bus")
        results["broker_degraded_after_s"] = round(seconds, 3)
        for body in bodies:
            bus = body["checks"]["event-bus"]
            assert bus["links"] == {broker.publish: "down", broker.subscribe: "down"}
            assert bus["reason"].startswith("not connected to ipc://") and "since" in bus
            assert body["checks"]["database"]["status"] == "ok"
        for server in servers:
            assert dependency_up(server, "event-bus") == 0
            assert page(server).status_code == 200
            assert patch_title(server, "written while the broker is down")[0].status_code == 204
    finally:
        broker.start()
    seconds, _ = watch.until(all_ok, 60, "not degraded once the broker is back")
    results["broker_ok_after_restart_s"] = round(seconds, 3)
    assert set(watch.codes) == {200}, "an instance answered not ready"
    for server in servers:
        assert dependency_up(server, "event-bus") == 1


@pytest.fixture(scope="module")
def nats(tmp_path_factory):
    server = NatsServer(tmp_path_factory.mktemp("degraded-nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory, zeo, nats):
    """One instance on the nats bus backend (its NatsBus says links_up as ZmqBus does)."""
    conf = new_instance(tmp_path_factory.mktemp("degraded-nats-instance"), http_server(0),
                        f"{CONF}instance-name n\n<event-bus>\n  backend nats\n"
                        f"  nats-server {nats.url}\n</event-bus>\n", storage=zeo_storage(zeo.address))
    server = ServerProcess(conf).start()
    yield server
    server.stop()


def test_nats_down_degrades_names_the_event_bus(nats_server, nats, results):
    watch = ReadyWatch([nats_server])
    watch.until(all_ok, 60, "ready and not degraded")
    nats.stop()
    try:
        seconds, (body,) = watch.until(degraded_by("event-bus"), 30, "degraded: event-bus")
        results["nats_degraded_after_s"] = round(seconds, 3)
        assert body["checks"]["event-bus"]["links"] == {nats.url: "down"}
        assert dependency_up(nats_server, "event-bus") == 0
        assert page(nats_server).status_code == 200
    finally:
        nats.start()
    seconds, _ = watch.until(all_ok, 60, "not degraded once NATS is back")
    results["nats_ok_after_restart_s"] = round(seconds, 3)
    assert set(watch.codes) == {200}, "the instance answered not ready"


def test_postgresql_down_degrades_serves_cached_pages_and_refuses_writes_fast(
        relstorage_servers, shared_postgresql, results):
    servers = relstorage_servers
    watch = ReadyWatch(servers)
    watch.until(all_ok, 60, "both instances ready and not degraded")
    create_document(servers[0], "made-before-postgresql-stop")
    warm(servers)
    shared_postgresql.halt()
    try:
        # a write before the probe has seen the outage: RelStorage's own error, a 503 too
        assert_write_refused(servers[0], "written as PostgreSQL stops", results,
                             "pg_first_write_503_s")
        seconds, bodies = watch.until(degraded_by("database"), 30, "degraded: database")
        results["pg_degraded_after_s"] = round(seconds, 3)
        for body in bodies:
            database = body["checks"]["database"]
            assert database["reason"].startswith("OperationalError: ")
            assert database["since"].endswith("+00:00")
        for server in servers:
            assert dependency_up(server, "database") == 0
            assert page(server).status_code == 200  # from the ZODB caches
            assert_write_refused(server, "written while PostgreSQL is down", results,
                                 "pg_write_503_s")
        assert_uncached_read_fails_fast(servers[1], f"/{SITE_ID}/made-before-postgresql-stop",
                                        results, "pg_uncached_read_503_s")
        for server in servers:
            assert page(server).status_code == 200
    finally:
        shared_postgresql.resume()
    seconds, _ = watch.until(all_ok, 60, "both ready and not degraded again")
    results["pg_ok_after_restart_s"] = round(seconds, 3)
    results["pg_writes_again_after_s"] = round(writes_work_again(servers, "after PostgreSQL"), 3)
    assert set(watch.codes) == {200}, "an instance answered not ready"
