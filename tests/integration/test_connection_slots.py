"""Hostile input against a real server: connection slots held by idle keep-alive clients,
slowloris request heads (header-timeout) and bare-LF request heads.

One server with ``max-connections 50`` and ``header-timeout 2s`` for the slot tests, one with
the default ``max-connections`` (1000) and ``header-timeout 2s`` for 500 slowloris
connections; raw loopback sockets send what ordinary clients do not. Waits are conditions with
deadlines (``select`` on the sockets). Pages during the slowloris attack are asked for by a
probe in a process of its own (the attacker keeps this one busy with 500 sockets) and judged
against the pages before it (``tests.support.latency``); figures go to
tests/results/connection_slots.json.
"""

import time

import pytest

from tests.robustness import ROWS
from tests.support.clients import (
    connect, exchange, is_closed, parse_response, readable, readable_among,
)
from tests.support.latency import PageProbe
from tests.support.results import record
from tests.support.server import wait_for
from txzserver.config.settings import ServerSettings

IDLE = ROWS["idle_connections"].figures
SLOW = ROWS["slowloris"].figures
MAX_CONNECTIONS = IDLE["idle"]
HEADER_TIMEOUT = SLOW["header_timeout"]
SLOWLORIS = SLOW["connections"]  # connections trickling a request head


def test_the_row_states_the_default_header_timeout():
    assert ServerSettings.__dataclass_fields__["header_timeout"].default == SLOW["default_timeout"]


@pytest.fixture(scope="module")
def slots_server(servers):
    return servers.start("slots", threads=1, extra=f"max-connections {MAX_CONNECTIONS}\n"
                                                   f"header-timeout {HEADER_TIMEOUT:g}s")


@pytest.fixture(scope="module")
def slowloris_server(servers):
    return servers.start("slowloris", threads=1, extra=f"header-timeout {HEADER_TIMEOUT:g}s")


def request(site_id, path="ok", close=False):
    headers = b"Host: localhost\r\n" + (b"Connection: close\r\n" if close else b"")
    return b"GET /%s/%s HTTP/1.1\r\n%s\r\n" % (site_id.encode(), path.encode(), headers)


def read_response(sock, timeout=10):
    """One complete response (Content-Length framed) on a connection that stays open."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        head, sep, body = bytes(data).partition(b"\r\n\r\n")
        if sep:
            status, headers, _ = parse_response(bytes(data))
            if len(body) >= int(headers["content-length"]):
                return status, headers
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete response within {timeout}s: {bytes(data[:200])!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {bytes(data[:200])!r}")
        data.extend(chunk)


def still_open(sock):
    """True when the server has neither closed ``sock`` nor sent anything on it."""
    return not readable(sock)


# 1. Idle keep-alive connections make room for newcomers

def test_idle_keep_alive_connections_do_not_lock_out_new_clients(slots_server, site_id):
    port = slots_server.ports["http"]
    idle, newcomers = [], []
    try:
        for _ in range(MAX_CONNECTIONS):  # each one request, then idle, keeping its slot
            sock = connect(port)
            sock.sendall(request(site_id))
            assert read_response(sock)[0] == 200
            idle.append(sock)

        # Each newcomer is served and stays (keep-alive), so the server stays full; the
        # connection idle the longest made room for it.
        newcomers_count = IDLE["newcomers"]
        for n in range(newcomers_count):
            sock = connect(port)
            newcomers.append(sock)
            sock.sendall(request(site_id))
            assert read_response(sock)[0] == 200
            assert is_closed(idle[n], timeout=5), f"idle connection {n} was not closed"
        assert all(still_open(sock) for sock in idle[newcomers_count:])

        # The connections that were not closed still work.
        idle[newcomers_count].sendall(request(site_id))
        assert read_response(idle[newcomers_count])[0] == 200
        log = wait_for(lambda: _log_lines(slots_server, "closing idle connection"), 5,
                       what="the eviction log lines")
        assert len(log) == newcomers_count and "max-connections" in log[0]
    finally:
        for sock in idle + newcomers:
            sock.close()


def _log_lines(server, text):
    return [line for line in server.log_text().splitlines() if text in line]


# 2. Slowloris: heads trickling in are cut after header-timeout

def test_slowloris_connections_are_closed_after_header_timeout(slowloris_server, site_id):
    port = slowloris_server.ports["http"]
    probe = PageProbe(slowloris_server.url(f"/{site_id}"))
    trickle = b"X-Slow: " + b"a" * 200
    attackers = {}  # socket -> [opened at, bytes sent, data received, closed at]
    next_trickle = time.monotonic()

    def trickle_when_due():
        """One more header byte on every open connection, every 0.25 s."""
        nonlocal next_trickle
        now = time.monotonic()
        if now < next_trickle:
            return
        next_trickle = now + 0.25
        for sock, state in attackers.items():
            if state[3] is None:
                try:
                    sock.send(trickle[state[1] % len(trickle):][:1])
                    state[1] += 1
                except OSError:
                    pass

    with probe:
        probe.baseline(20)
        start = probe.mark()
        try:
            _attack(port, site_id, attackers, trickle_when_due)
        finally:
            for sock in attackers:
                sock.close()
        probe.wait_samples(3, after=probe.mark())
        pages = probe.verdict("during and right after the attack", start, ratio=SLOW["ratio"],
                              floor=SLOW["floor"], ceiling=SLOW["ceiling"])

    lifetimes = sorted(state[3] - state[0] for state in attackers.values())
    record("connection_slots", "slowloris", connections=SLOWLORIS,
           lifetime_min_s=round(lifetimes[0], 3), lifetime_max_s=round(lifetimes[-1], 3),
           **pages.figures())
    pages.check()
    # Cut at header-timeout (from the opening), not at idle-timeout (60 s).
    assert (HEADER_TIMEOUT - 0.1 <= lifetimes[0]
            and lifetimes[-1] <= HEADER_TIMEOUT + SLOW["slack"]), lifetimes
    sent = sorted(state[1] for state in attackers.values())
    # they kept sending until they were cut (the first ones opened while the rest connected)
    assert sent[0] >= 1 and sent[len(sent) // 2] >= 4, sent
    for state in attackers.values():
        status, headers, body = parse_response(bytes(state[2]))
        assert status == 408
        assert headers["connection"] == "close"
        assert b"header-timeout" in body
    print(f"\n{SLOWLORIS} slowloris connections cut after {lifetimes[0]:.2f}..{lifetimes[-1]:.2f}s;"
          f" pages: {pages.summary()}")


def _attack(port, site_id, attackers, trickle_when_due):
    """Open SLOWLORIS connections sending a request head byte by byte; return once the server
    has closed all of them (``attackers``: socket -> [opened at, sent, received, closed at])."""
    for n in range(SLOWLORIS):
        sock = connect(port)
        sock.sendall(b"GET /%s HTTP/1.1\r\nHost: localhost\r\n" % site_id.encode())
        attackers[sock] = [time.monotonic(), 0, bytearray(), None]
        trickle_when_due()  # the first ones keep trickling while the others connect
        if n % 50 == 49:
            time.sleep(0.05)  # within the listen backlog (128): no SYN retried for seconds

    deadline = time.monotonic() + HEADER_TIMEOUT + 10
    while any(state[3] is None for state in attackers.values()):
        assert time.monotonic() < deadline, "slowloris connections still open long after header-timeout"
        trickle_when_due()
        open_socks = [sock for sock, state in attackers.items() if state[3] is None]
        for sock in readable_among(open_socks, 0.05):
            state = attackers[sock]
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            state[2].extend(chunk)
            if not chunk:
                state[3] = time.monotonic()


# 3. Bare LF line endings get 400 at once

def test_bare_lf_request_gets_400_at_once(slots_server, site_id):
    """The head is refused for its line endings, not left to header-timeout (that is 408)."""
    raw = exchange(slots_server.ports["http"],
                   b"GET /%s HTTP/1.1\nHost: localhost\n\n" % site_id.encode(), timeout=5)
    status, headers, body = parse_response(raw)
    assert status == 400
    assert headers["connection"] == "close"
    assert ROWS["bare_lf"].figures["reason"].encode() in body


# 4. 503 only when no connection is idle (last: it leaves busy connections to be cut)

def test_newcomer_gets_503_only_when_every_connection_is_busy(slots_server, site_id):
    port = slots_server.ports["http"]
    busy = []
    try:
        for _ in range(MAX_CONNECTIONS):
            # A complete head asking for 100-continue: the interim answer shows the server
            # is now reading this request's body (busy, and not bound by header-timeout).
            sock = connect(port)
            sock.sendall(b"POST /%s/ok HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n"
                         b"Expect: 100-continue\r\n\r\n" % site_id.encode())
            sock.settimeout(5)
            assert sock.recv(100).startswith(b"HTTP/1.1 100 ")
            busy.append(sock)

        status, headers, body = parse_response(exchange(port, b"", timeout=5))
        assert status == 503
        assert b"max-connections" in body
        assert all(still_open(sock) for sock in busy)

        busy.pop().close()  # a slot is free again

        def served():
            raw = exchange(port, request(site_id, close=True), timeout=5)
            return parse_response(raw)[0] == 200
        assert wait_for(served, timeout=5, what="a free connection slot")
    finally:
        for sock in busy:
            sock.close()
