"""The front's per-address and per-connection limits as environment variables (FRONT_*,
config/haproxy.cfg and components/front/haproxy.cfg), with Debian's real HAProxy before a real
txzserver with its WebSocket endpoint, on loopback (every client is 127.0.0.1, one address as
behind a NAT): set low, each limit answers 429 at the count it names and not before; WebSocket
upgrades count on their own, so that WebSockets open up to their limit neither refuse nor are
refused by page connections at theirs; an invalid value stops HAProxy with a message naming the
line of the variable. The TLS certificate is the development CA's (compose/dev-certs.sh).
"""

import os
import re
import socket
import ssl
import subprocess
from contextlib import ExitStack

import pytest

from tests.support import haproxy
from tests.support.clients import read_head
from tests.support.instance import ROOT, SITE_ID
from tests.support.server import wait_for
from tests.unit.wsframes import PING, client_frame, handshake

COMPOSE = ROOT / "config" / "haproxy.cfg"
KUBERNETES = ROOT / "config" / "kubernetes" / "components" / "front" / "haproxy.cfg"
DEFAULTS = {"FRONT_MAX_CONN_PER_ADDRESS": "500", "FRONT_CONN_RATE_PER_ADDRESS": "1000",
            "FRONT_MAX_WEBSOCKETS_PER_ADDRESS": "2000", "FRONT_REQ_RATE_PER_CONNECTION": "500"}
#: the limits of the fronts below: low enough to reach on loopback in a second
CONNECTIONS, WEBSOCKETS = 4, 3
PAGE = f"/{SITE_ID}/robots.txt"


def render(text, pem, ports, backend=None):
    """A front configuration for loopback: the certificate, free ports, the one instance (its
    HTTP and health ports; None: an unreachable one)."""
    text = text.replace("/etc/haproxy/certs/front.pem", str(pem))
    text = text.replace("bind :8443 ", f"bind 127.0.0.1:{ports['https']} ")
    text = re.sub(r"bind (127\.0\.0\.1)?:8404\b", f"bind 127.0.0.1:{ports['monitor']}", text)
    text = re.sub(r"bind (127\.0\.0\.1)?:8405\b", f"bind 127.0.0.1:{ports['metrics']}", text)
    if backend is not None:
        text = text.replace("check port 8081 ", f"check port {backend.ports['health']} ")
    address = f"127.0.0.1:{backend.port}" if backend is not None else "127.0.0.1:9"
    text = re.sub(r"instance[12]:8080", address, text)
    return text.replace(" resolvers docker", "")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("front-limits-certs")
    subprocess.run(["sh", str(ROOT / "compose" / "dev-certs.sh"), str(directory)],
                   env=dict(os.environ, SERVER_NAMES="localhost 127.0.0.1 ::1"), check=True,
                   capture_output=True)
    return directory


@pytest.fixture(scope="module")
def backend(servers):
    """A real txzserver with its WebSocket endpoint (/SITE/ws) and health listener."""
    return servers.start("front-limits-backend", threads=2, extra=(
        "trusted-proxy 127.0.0.1\n<health-server>\n  address 127.0.0.1:0\n</health-server>\n"
        "<websocket>\n  path /ws\n</websocket>\n"))


class Front:
    """A running HAProxy on config/haproxy.cfg with the given FRONT_* environment."""

    def __init__(self, certs, backend, directory, **limits):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FRONT_")}
        self.env.update(limits)
        self.log = directory / "haproxy.log"
        self.context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        config = directory / "haproxy.cfg"

        def write_config(ports):
            return _write(config, render(COMPOSE.read_text(), certs / "front.pem", ports, backend))

        self.process, self.ports = haproxy.start(write_config, self.env, self.log,
                                                 names=("https", "monitor", "metrics"))

    def connect(self, source="127.0.0.1"):
        """A TLS connection from ``source`` (another loopback address: another client)."""
        raw = socket.create_connection(("127.0.0.1", self.ports["https"]), timeout=30,
                                       source_address=(source, 0))
        return self.context.wrap_socket(raw, server_hostname="localhost")

    def stop(self):
        haproxy.stop(self.process)


def _write(path, text):
    path.write_text(text)
    return path


def status_of(sock, request, drain=True):
    """Send ``request`` on ``sock``; the status of the answer, its body read when ``drain``
    (the connection stays usable: keep-alive), else left (an upgraded connection's frames)."""
    sock.sendall(request)
    head, body = read_head(sock)
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    remaining = int(length.group(1)) - len(body) if drain and length else 0
    while remaining > 0:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            raise ConnectionError("closed within the body")
        remaining -= len(chunk)
    return int(head.split(b" ", 2)[1])


def get(path=PAGE, host=b"localhost"):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"


def page(sock):
    """One page request on ``sock`` (kept open: keep-alive); its status."""
    return status_of(sock, get())


def page_or_421(sock):
    """A request for a host the front does not serve (it answers 421 itself); its status."""
    return status_of(sock, get(host=b"elsewhere.example"))


def websocket(sock):
    """A WebSocket upgrade of the site's endpoint through the front; its status (101: open)."""
    return status_of(sock, handshake(f"/{SITE_ID}/ws".encode(), host=b"localhost"), drain=False)


def answers_ping(sock, timeout=30):
    """Whether the WebSocket on ``sock`` is open end to end: a ping through the front is
    answered by the instance's pong (an unmasked frame 0x8A with the same payload)."""
    sock.sendall(client_frame(b"front", opcode=PING))
    sock.settimeout(timeout)
    data = b""
    while b"\x8a\x05front" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    return True


@pytest.fixture(scope="module")
def front(certs, backend, tmp_path_factory):
    running = Front(certs, backend, tmp_path_factory.mktemp("front-limits"),
                    FRONT_MAX_CONN_PER_ADDRESS=str(CONNECTIONS),
                    FRONT_MAX_WEBSOCKETS_PER_ADDRESS=str(WEBSOCKETS))

    def up():
        with running.connect() as sock:
            return page(sock) == 200

    try:
        # up once the instance passes HAProxy's health check (its /healthz/ready)
        wait_for(lambda: _quietly(up), 90, interval=0.5, what="the front and its instance")
        yield running
    finally:
        running.stop()


def _quietly(check):
    try:
        return check()
    except OSError:
        return False


def wait_released(front):
    """Until a new connection's page is answered (the counters of closed ones dropped)."""
    def free():
        with front.connect() as sock:
            return page(sock) == 200
    wait_for(free, 30, interval=0.1, what="the front to count the closed connections out")


def test_the_defaults_are_todays_limits(front, certs, tmp_path):
    """Without FRONT_* the front logs the limits it had before they became parameters."""
    plain = Front(certs, None, tmp_path)
    try:
        wait_for(lambda: "front limits:" in plain.log.read_text(errors="replace"), 30,
                 what="the limits notice")
        notice = re.search(r"front limits: (.*)'", plain.log.read_text(errors="replace")).group(1)
        assert dict(item.split("=") for item in notice.split()) == DEFAULTS
    finally:
        plain.stop()
    assert re.search(r"front limits: FRONT_MAX_CONN_PER_ADDRESS=4 .*FRONT_MAX_WEBSOCKETS_PER_ADDRESS=3 ",
                     front.log.read_text(errors="replace"))


def test_connections_beyond_the_limit_get_429(front):
    with ExitStack() as stack:
        open_ = [stack.enter_context(front.connect()) for _ in range(CONNECTIONS)]
        assert [page(sock) for sock in open_] == [200] * CONNECTIONS
        with front.connect() as extra:
            assert page(extra) == 429
        # the ones already open go on being answered
        assert [page(sock) for sock in open_] == [200] * CONNECTIONS
    wait_released(front)


def test_websockets_count_apart_from_page_connections(front):
    """Open WebSockets do not take page connections' places, page connections at their limit
    do not refuse WebSockets, and each kind is refused above its own limit. (No step waits for
    a closed connection to be counted out: every count only grows.)"""
    with ExitStack() as stack:
        sockets = [stack.enter_context(front.connect()) for _ in range(WEBSOCKETS - 1)]
        assert [websocket(sock) for sock in sockets] == [101] * (WEBSOCKETS - 1)
        # with WebSockets open, as many page connections as with none
        pages = [stack.enter_context(front.connect()) for _ in range(CONNECTIONS)]
        assert [page(sock) for sock in pages] == [200] * CONNECTIONS
        with front.connect() as extra:
            assert page(extra) == 429
        # page connections at their limit: one more WebSocket, up to their own limit
        sockets.append(stack.enter_context(front.connect()))
        assert websocket(sockets[-1]) == 101
        with front.connect() as extra:
            assert websocket(extra) == 429
        # every one still open end to end, and the pages still answered
        assert all(answers_ping(sock) for sock in sockets)
        assert [page(sock) for sock in pages] == [200] * CONNECTIONS
    wait_released(front)


def test_the_request_rate_per_connection(certs, tmp_path):
    """FRONT_REQ_RATE_PER_CONNECTION requests within 10 s on one connection, then 429; another
    connection from the same address is not refused. The requests name a host the front does
    not serve: the front answers them itself (421), quickly, after counting them."""
    limit = 20
    front = Front(certs, None, tmp_path, FRONT_REQ_RATE_PER_CONNECTION=str(limit))
    try:
        with front.connect() as busy, front.connect() as other:
            statuses = [page_or_421(busy) for _ in range(limit + 1)]
            assert statuses == [421] * limit + [429]
            assert page_or_421(other) == 421
    finally:
        front.stop()


def test_the_connection_rate_per_address(certs, tmp_path):
    """FRONT_CONN_RATE_PER_ADDRESS new connections within 10 s from one address, then 429;
    another address is not refused. (127.0.0.2 and .3: the start's probe came from .1.)"""
    limit = 12
    front = Front(certs, None, tmp_path, FRONT_CONN_RATE_PER_ADDRESS=str(limit))
    try:
        statuses = []
        for _ in range(limit + 1):
            with front.connect("127.0.0.2") as sock:
                statuses.append(page_or_421(sock))
        assert statuses == [421] * limit + [429]
        with front.connect("127.0.0.3") as sock:
            assert page_or_421(sock) == 421
    finally:
        front.stop()



@pytest.mark.parametrize("config", [COMPOSE, KUBERNETES], ids=["compose", "kubernetes"])
@pytest.mark.parametrize("variable", sorted(DEFAULTS))
@pytest.mark.parametrize("value", ["", "abc", "-5", "0", "10x", "1e3"])
def test_an_invalid_value_stops_haproxy(config, variable, value, certs, tmp_path):
    text = render(config.read_text(), certs / "front.pem",
                  {"https": 1, "monitor": 2, "metrics": 3})
    path = _write(tmp_path / "haproxy.cfg", text)
    env = dict(os.environ, **{variable: value}, POD_NAMESPACE="txzserver", CLUSTER_DOMAIN="invalid")
    result = subprocess.run(["haproxy", "-c", "-f", str(path)], env=env, capture_output=True,
                            text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    line = int(re.search(r"\[ALERT\].*parsing \[[^:]+:(\d+)\] : stick-table", output).group(1))
    assert f'size "${{{variable}}}"' in text.splitlines()[line - 1], output
    # the same configuration with the default value is valid
    env[variable] = DEFAULTS[variable]
    assert subprocess.run(["haproxy", "-c", "-f", str(path)], env=env,
                          capture_output=True).returncode == 0


def test_both_fronts_apply_the_same_limits():
    """components/front/haproxy.cfg keeps config/haproxy.cfg's limits (rules and tables), and
    its HTTP/3 (the QUIC bind, its limits and glitch thresholds, Alt-Svc)."""
    def limits(text):
        lines = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
        return [line for line in lines if re.search(r"FRONT_|sc[0-2]|per-address|per-connection"
                                                    r"|acl websocket|txn\.address|quic|glitches"
                                                    r"|Alt-Svc", line)]
    compose, kubernetes = limits(COMPOSE.read_text()), limits(KUBERNETES.read_text())
    assert compose == kubernetes
    assert len([line for line in compose if line.startswith("presetenv FRONT_")]) == len(DEFAULTS)
    for variable, default in DEFAULTS.items():
        assert f"presetenv {variable} {default}" in compose
