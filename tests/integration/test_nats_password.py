"""A NATS password in the server URL (as Kubernetes and compose configure it) is never shown: a
real nats-server that requires user and password, a real instance with the nats event bus, a nats
task queue and a health server. While NATS is up and after it is stopped (reconnect errors,
"degraded" readiness), neither the event log, the process output nor /healthz/ready's JSON holds
the password; they name the server by scheme, host and port.
"""

import asyncio
import secrets

import httpx
import nats
import pytest

from tests.support.instance import http_server, new_instance
from tests.support.nats import NatsServer
from tests.support.server import ServerProcess, wait_for

PASSWORD = f"pw-{secrets.token_hex(8)}"


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    server = NatsServer(tmp_path_factory.mktemp("nats-auth"), extra_config=(
        f'authorization {{\n  user: "txz"\n  password: "{PASSWORD}"\n}}\n'))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def instance(tmp_path, nats_server):
    url = f"nats://txz:{PASSWORD}@127.0.0.1:{nats_server.port}"
    conf = new_instance(tmp_path / "instance", http_server(0), (
        f"<event-bus>\n  backend nats\n  nats-server {url}\n  max-bytes 64MB\n</event-bus>\n"
        "<task-queue default>\n  backend nats\n</task-queue>\n"
        "<health-server>\n  address 127.0.0.1:0\n  check-interval 1s\n</health-server>\n"))
    server = ServerProcess(conf)
    try:
        yield server.start()
    finally:
        server.stop()


def refused_without_password(url):
    async def connect():
        try:
            nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0,
                                    connect_timeout=5)
        except (nats.errors.Error, OSError) as exc:  # the server's Authorization Violation
            return exc
        await nc.close()
        return None
    return asyncio.run(connect())


def test_the_password_in_the_nats_url_is_never_shown(nats_server, instance):
    assert refused_without_password(nats_server.url), "this NATS must require the password"

    def ready():
        response = httpx.get(instance.url("/healthz/ready", kind="health"), timeout=10)
        return response.status_code, response.text

    def bus_status():
        return httpx.get(instance.url("/healthz/ready", kind="health"),
                         timeout=10).json()["checks"]["event-bus"]["status"]

    wait_for(lambda: bus_status() == "ok", 60, what="event-bus ok: connected with the password")
    wait_for(lambda: "task queue default: NATS stream" in instance.log_text(), 60,
             what="the task queue connected with the password")
    mark = len(instance.event_log.read_text(errors="replace"))
    nats_server.stop()
    try:
        wait_for(lambda: bus_status() == "degraded", 60, what="event-bus degraded")
        # a failed reconnect attempt (nats-py's error callback): where a URL would show
        wait_for(lambda: "event bus: NATS: " in instance.event_log.read_text(errors="replace")[mark:], 60,
                 what="a failed reconnect logged")
        status, body = ready()
    finally:
        nats_server.start()
    print(f"/healthz/ready while NATS is down: {status} {body}")
    assert status == 200
    assert PASSWORD not in body
    assert f"nats://127.0.0.1:{nats_server.port}" in body
    text = instance.log_text()
    assert PASSWORD not in text
    assert f"nats://127.0.0.1:{nats_server.port}" in text
    wait_for(lambda: bus_status() == "ok", 60, what="event-bus ok again")
    assert PASSWORD not in instance.log_text()
