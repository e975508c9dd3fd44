"""HTTP/3 through the compose front (HAProxy 3.0 on UDP, the port number of its TCP listener).

aioquic's HTTP/3 client fetches the Plone front page and a 100 MiB File through the front's UDP
port (sha256 and size checked); headless Chromium, forced onto QUIC for the front's origin
(tests/support/h3browser), loads the front page and fetches the File, and its performance entries
say `h3`; the front's TCP responses (HTTP/1.1 and h2) announce HTTP/3 with Alt-Svc; a stream-reset
flood on one QUIC connection (docs/security.md, row h3_rapid_reset_front) leaves pages on other
connections near their pace just before it (tests/support/latency.PageProbe, a process of its own).
"""

import asyncio
import base64
import hashlib
import os
import time

import httpx
import pytest
from aioquic.h3.connection import ErrorCode

from tests.robustness import ROWS
from tests.support.browser import load
from tests.support.h3browser import chromium
from tests.support.h3client import run, session
from tests.support.latency import PageProbe
from tests.support.results import record

from .conftest import CA, ROOT
from .frontlog import front_log_since, outcomes

#: the front's certificate (Chromium accepts it by its key: its QUIC trusts no test CA)
CERT = ROOT / "compose" / "certs" / "localhost.crt"
SIZE = 100 * 1024 * 1024
BLOB_ID = "h3-blob.bin"
FIGURES = ROWS["h3_rapid_reset_front"].figures
ATTACK_MARK = "h3-reset"  # in the query string of the flood's requests: the front logs it

def authority(port):
    return f"localhost:{port}".encode()


async def fetch(client, port, path, timeout=60):
    """GET ``path`` on the HTTP/3 connection ``client``; its Response once complete."""
    response = client.request(path, authority=authority(port))
    return await asyncio.wait_for(response.done, timeout)


@pytest.fixture(scope="module")
def blob(base_url, ssl_context, admin):
    """A 100 MiB File made through the front: its download path and sha256."""
    data = os.urandom(SIZE)
    body = {"@type": "File", "id": BLOB_ID, "title": "HTTP/3 blob",
            "file": {"data": base64.b64encode(data).decode("ascii"), "encoding": "base64",
                     "filename": BLOB_ID, "content-type": "application/octet-stream"}}
    with httpx.Client(base_url=base_url, verify=ssl_context, timeout=600) as client:
        client.delete(f"/Plone/{BLOB_ID}", auth=admin)
        response = client.post("/Plone", json=body, auth=admin, headers={"Accept": "application/json"})
    assert response.status_code == 201, response.text[:300]
    return {"path": f"/Plone/{BLOB_ID}/@@download/file", "sha256": hashlib.sha256(data).hexdigest()}


def test_front_page_over_http3(port):
    since = str(int(time.time()) - 1)

    async def go():
        async with session(port, CA) as client:
            return await fetch(client, port, "/Plone")

    response = run(go())
    assert response.status == 200, response.headers
    assert b"<html" in response.body and b"Plone" in response.body
    assert response.headers[b"x-txzserver-instance"] in (b"instance1", b"instance2")
    assert b"strict-transport-security" in response.headers
    assert b"alt-svc" not in response.headers  # already on HTTP/3
    # links are made from the front's X-Forwarded-Host (the request's :authority)
    assert f"https://localhost:{port}/Plone".encode() in response.body
    deadline = time.monotonic() + 15
    while not any('"GET /Plone HTTP/3.0"' in line for line in front_log_since(since)):
        assert time.monotonic() < deadline, "the front logged no HTTP/3 request"
        time.sleep(0.5)


def test_100mib_blob_over_http3(port, blob):
    async def go():
        async with session(port, CA) as client:
            return await fetch(client, port, blob["path"], timeout=300)

    start = time.monotonic()
    response = run(go())
    seconds = time.monotonic() - start
    record("smoke_front_h3", "blob_over_http3", mib=SIZE // 2 ** 20, seconds=round(seconds, 1),
           mib_per_s=round(SIZE / 2 ** 20 / seconds, 1))
    assert response.status == 200, response.headers
    assert response.size == SIZE
    assert response.sha.hexdigest() == blob["sha256"]


def test_alt_svc_on_the_tcp_responses(base_url, ssl_context, port):
    for http2 in (False, True):
        with httpx.Client(base_url=base_url, verify=ssl_context, http2=http2, timeout=60) as client:
            response = client.get("/Plone")
        assert response.status_code == 200
        assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        # the published port (FRONT_PORT), not the container's 8443
        assert response.headers["alt-svc"] == f'h3=":{port}"; ma=86400'


def test_chromium_loads_the_front_page_and_the_blob_over_http3(port, blob, tmp_path):
    since = str(int(time.time()) - 1)
    driver = chromium(port, CERT, tmp_path / "profile")
    try:
        load(driver, f"https://localhost:{port}/Plone")
        page = driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].nextHopProtocol")
        title = driver.title
        driver.set_script_timeout(300)
        # the File by fetch(): navigating to @@download would start a download, not a page
        fetched = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch(arguments[0]).then(async response => {
              const body = await response.arrayBuffer();
              const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
              const entry = performance.getEntriesByType('resource')
                .filter(e => e.name === response.url).pop();
              done({status: response.status, size: body.byteLength,
                    sha256: Array.from(digest, b => b.toString(16).padStart(2, '0')).join(''),
                    protocol: entry ? entry.nextHopProtocol : null});
            }).catch(error => done({error: String(error)}));
        """, f"https://localhost:{port}{blob['path']}")
    finally:
        driver.quit()
    assert page == "h3", (page, title)
    assert "Plone" in title
    assert fetched.get("error") is None, fetched
    assert fetched["status"] == 200 and fetched["size"] == SIZE, fetched
    assert fetched["sha256"] == blob["sha256"]
    assert fetched["protocol"] == "h3", fetched
    lines = front_log_since(since)
    assert any('"GET /Plone HTTP/3.0"' in line for line in lines), lines[-5:]
    assert any(f'"GET {blob["path"]} HTTP/3.0"' in line for line in lines), lines[-5:]


class ResetFlood:
    """Requests opened and cancelled at once on one QUIC connection through the front (HEADERS,
    then STOP_SENDING + RESET_STREAM: how RFC 9114 4.1.1 cancels), ``pairs`` of them spread over
    ``seconds`` (or slower, when the front hands out streams, MAX_STREAMS, slower than that);
    then one plain request on the same connection.

    Paced, not as fast as this process can: aioquic encrypts every packet in Python, and an
    unpaced flood took a whole core of the two the stack runs on (5,000 pairs in 4 s, 2.2 s of
    CPU), so the pages measured the attacker's CPU rather than the front."""

    def __init__(self, port, pairs, seconds):
        self.port, self.pairs, self.seconds = port, pairs, seconds
        self.sent = 0
        self.elapsed = None
        self.closed = None  # the front's CONNECTION_CLOSE, if it sent one
        self.after = None  # the status of the plain request afterwards (None: no answer)

    async def run(self, started):
        async with session(self.port, CA, idle_timeout=120) as client:
            quic = client._quic
            started.set()
            start = time.monotonic()
            while (self.sent < self.pairs and time.monotonic() - start < self.seconds + 2
                   and not client.closed.done()):
                if self.sent >= self.pairs * (time.monotonic() - start) / self.seconds:
                    await asyncio.sleep(0.002)  # ahead of the pace
                    continue
                stream_id = quic.get_next_available_stream_id()
                # aioquic holds back a stream past the front's MAX_STREAMS (its HEADERS unsent,
                # so a cancel would reach the front alone): wait for the front to allow more
                if stream_id // 4 >= quic._remote_max_streams_bidi:
                    await asyncio.sleep(0.001)
                    continue
                client.request(f"/Plone?{ATTACK_MARK}={self.sent}", authority=authority(self.port))
                quic.stop_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
                quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
                client.transmit()
                self.sent += 1
                if self.sent % 8 == 0:
                    await asyncio.sleep(0)  # read what the front sent meanwhile
            self.elapsed = time.monotonic() - start
            if not client.closed.done():
                try:
                    self.after = (await fetch(client, self.port, "/Plone", timeout=10)).status
                except (asyncio.TimeoutError, ConnectionError):
                    pass
            if client.closed.done():
                self.closed = client.closed.result()


def flood_outcome(since, sent, timeout=30):
    """(reached an instance, got 429, ended in the front) for the flood's requests, from the
    front's log. It logs a request when its stream ends; one cancelled before the front read
    its HEADERS is never logged (nor sent anywhere), so this waits until all ``sent`` are
    logged or the count has not grown for 3 s."""
    deadline, last, still = time.monotonic() + timeout, None, 0
    while True:
        reached, denied, front = outcomes(front_log_since(since), ATTACK_MARK)
        logged = reached + denied + front
        still = still + 1 if logged == last else 0
        if logged >= sent or still >= 3 or time.monotonic() > deadline:
            return reached, denied, front
        last = logged
        time.sleep(1)  # one `docker logs` at a time, not a loop of them


def test_reset_flood_does_not_delay_pages_on_other_connections(port, base_url):
    judged = {"ratio": FIGURES["ratio"], "floor": FIGURES["floor"], "ceiling": FIGURES["ceiling"]}
    flood = ResetFlood(port, FIGURES["pairs"], FIGURES["seconds"])
    with PageProbe(f"{base_url}/Plone", verify=CA) as probe:
        probe.baseline(20, timeout=300)  # 21 pages: a minute or more on a busy machine
        since = str(int(time.time()) - 1)

        async def attack():
            started = asyncio.Event()
            task = asyncio.ensure_future(flood.run(started))
            await asyncio.wait_for(started.wait(), 30)  # the QUIC handshake is not the attack
            marks.append(probe.mark())
            await task

        marks = []
        run(attack(), timeout=FIGURES["seconds"] + 120)
        attack_end = probe.mark()
        probe.wait_samples(5, after=attack_end)
        during = probe.verdict("during the reset flood", marks[0], attack_end, **judged)
        after = probe.verdict("right after the reset flood", attack_end, probe.mark(),
                              min_samples=5, **judged)
    reached, denied, front = flood_outcome(since, flood.sent)
    closed = flood.closed
    figures = record("smoke_front_h3", "h3_rapid_reset_front", pairs_sent=flood.sent,
                     attack_seconds=round(flood.elapsed or 0, 2), reached_an_instance=reached,
                     got_429=denied, ended_in_the_front=front,
                     closed_by_front=None if closed is None else
                     {"error_code": closed.error_code, "reason": closed.reason_phrase},
                     on_attacking_connection=flood.after,
                     during=during.figures(), after=after.figures())
    print(f"\nQUIC reset flood through the front: {figures}")
    assert flood.sent >= FIGURES["min_sent"], f"only {flood.sent} cancelled requests sent"
    during.check()
    after.check()
    # the flooding connection: closed by the front, or still answered (200, or 429 above its
    # request rate)
    assert closed is not None or flood.after in (200, 429), (closed, flood.after)
    # past one connection's request budget the front answers 429 itself: at most the budget
    # and the streams in flight pass its rules; the rest got 429 or were cancelled before the
    # front read them (not logged)
    assert reached + front <= FIGURES["budget"] + FIGURES["streams"], (reached, denied, front)
    assert reached + denied + front <= flood.sent, (reached, denied, front, flood.sent)
    # a cancelled request ends in the front (held 10 ms there once its connection sent more
    # than held_after), it is not rendered by an instance for nobody: only some of the first
    # ones, which go on at once, may reach one before the front reads their cancel
    assert reached <= FIGURES["held_after"] + FIGURES["streams"], (reached, denied, front)
