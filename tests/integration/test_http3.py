"""HTTP/3 against a real ``txzserver serve`` with ``http3 on``, spoken by aioquic's client.

The Plone front page and the session's 100 MB File over QUIC, Alt-Svc on the TCP listener's
HTTP/1.1 and h2 responses, streams at once, a client that stops reading (bounded RSS, other
clients' pages served as before it), a rapid-reset flood (H3_EXCESSIVE_LOAD) and an
over-large header (431); Chromium loading the front page and the File over h3 (whole, by
SHA-256); the same on Twisted's epoll reactor.
"""

import asyncio
import re
import ssl
import time

import httpx
import pytest
from aioquic.h3.connection import ErrorCode

from tests.robustness import ROWS
from tests.support.h3browser import chromium
from tests.support.h3client import run, session
from tests.support.latency import PageProbe
from tests.support.results import record
from tests.support.browser import load
from tests.support.server import rss_bytes, wait_for

MB = 1024 * 1024
#: RSS the server may grow by while a client takes none of a 100 MB file: a few buffers
#: (256 KB a stream, aioquic's send buffer) and Python's arenas, not the file
STALLED_RSS_MB = 40
RESET = ROWS["h3_rapid_reset"].figures
RESET_BURST = RESET["burst"]


@pytest.fixture(scope="module")
def server(servers):
    return servers.start("h3", https=True, http3=True, threads=2,
                         extra=f"http2-max-reset-burst {RESET_BURST}\n"
                               "http2-reset-rate 1\nmax-header-size 16384\n")


def test_front_page_over_http3(server, site_id, tls_files):
    async def go():
        async with session(server.ports["https"], tls_files["ca"]) as client:
            return await client.get(f"/{site_id}")

    response = run(go())
    assert response.status == 200, response.headers
    assert b"Plone" in response.body
    assert b"alt-svc" not in response.headers  # already on HTTP/3
    access = server.instance / "log" / "access.log"
    assert wait_for(lambda: access.exists() and "HTTP/3" in access.read_text(), 10,
                    what="an HTTP/3 line in the access log")


def test_big_file_whole_over_http3(server, big_file, tls_files):
    """Whole, and in datagrams as large as the loopback path and the listener allow: the
    server's path MTU discovery raised them from 1,200 bytes to http3-max-datagram-size
    (16384 by default) over a real UDP socket with the don't-fragment bit."""
    async def go():
        async with session(server.ports["https"], tls_files["ca"]) as client:
            return await client.get(big_file["path"], timeout=240), client.largest_datagram

    response, largest = run(go())
    assert response.status == 200
    assert response.size == big_file["size"]
    assert response.sha.hexdigest() == big_file["sha256"]
    assert largest == 16384


def test_alt_svc_on_http1_and_h2(server, site_id, tls_files):
    port = server.ports["https"]
    trusted = ssl.create_default_context(cafile=str(tls_files["ca"]))
    for http2 in (False, True):
        with httpx.Client(http2=http2, verify=trusted, timeout=30) as client:
            response = client.get(f"https://localhost:{port}/{site_id}")
        assert response.status_code == 200
        assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert response.headers["alt-svc"] == f'h3=":{port}"; ma=86400'


def test_streams_at_once(server, site_id, tls_files):
    async def go():
        async with session(server.ports["https"], tls_files["ca"]) as client:
            responses = [client.request(f"/{site_id}/@@ping-{n}" if n % 2 else f"/{site_id}")
                         for n in range(10)]
            return await asyncio.wait_for(asyncio.gather(*(r.done for r in responses)), 120)

    responses = run(go())
    assert [r.status for r in responses[::2]] == [200] * 5
    assert [r.status for r in responses[1::2]] == [404] * 5
    assert len({r.stream_id for r in responses}) == 10


def test_over_large_header_gets_431(server, site_id, tls_files):
    async def go():
        async with session(server.ports["https"], tls_files["ca"]) as client:
            refused = await client.get(f"/{site_id}", headers=[(b"x-big", b"a" * 20000)])
            after = await client.get(f"/{site_id}")
            return refused, after

    refused, after = run(go())
    assert refused.status == 431 and b"max-header-size" in refused.body
    assert after.status == 200  # the connection is still good


def test_rapid_reset_closes_with_excessive_load(server, site_id, tls_files):
    async def go():
        async with session(server.ports["https"], tls_files["ca"]) as client:
            for _ in range(RESET["streams"]):
                response = client.request(f"/{site_id}")
                # a cancel (RFC 9114 4.1.1): stop reading and stop sending
                client._quic.stop_stream(response.stream_id, ErrorCode.H3_REQUEST_CANCELLED)
                client._quic.reset_stream(response.stream_id, ErrorCode.H3_REQUEST_CANCELLED)
                client.transmit()
            return await asyncio.wait_for(client.closed, 30)

    closed = run(go())
    assert closed.error_code == ErrorCode.H3_EXCESSIVE_LOAD
    assert "resets" in closed.reason_phrase
    assert f"more than {RESET_BURST} stream resets" in server.log_text()


def test_client_that_stops_reading(server, site_id, big_file, tls_files):
    with PageProbe(server.url(f"/{site_id}")) as probe:
        probe.baseline(20)
        before = rss_bytes(server.pid)
        peak = [before]

        async def go():
            async with session(server.ports["https"], tls_files["ca"],
                               idle_timeout=120) as client:
                response = client.request(big_file["path"])
                while response.size < 2 * MB:
                    await asyncio.sleep(0.05)
                client.reading = False  # takes nothing more, acknowledges nothing
                start = probe.mark()
                deadline = time.monotonic() + 8
                while time.monotonic() < deadline:
                    peak[0] = max(peak[0], rss_bytes(server.pid))
                    await asyncio.sleep(0.1)
                return start, response.size

        start, received = run(go())
        verdict = probe.verdict("h3 client not reading", start, min_samples=10)
    assert received < big_file["size"]
    grown = (peak[0] - before) / MB
    record("http3", "client_not_reading", rss_growth_mb=round(grown, 1),
           received_mb=round(received / MB, 1), **verdict.figures())
    assert grown < STALLED_RSS_MB, f"RSS grew {grown:.1f} MB while a client read nothing"
    verdict.check()


#: In the page: fetch a URL whole, its size, SHA-256 (hex) and protocol, or the error.
FETCH_WHOLE = """const done = arguments[arguments.length - 1];
fetch(arguments[0]).then(r => r.arrayBuffer()).then(async body => {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
  const entry = performance.getEntriesByType('resource').pop();
  done([body.byteLength, Array.from(digest, b => b.toString(16).padStart(2, '0')).join(''),
        entry.nextHopProtocol]);
}).catch(error => done(['error', String(error)]));"""


def test_chromium_loads_the_front_page_and_the_blob_over_h3(server, site_id, big_file, tls_files,
                                                           tmp_path):
    port = server.ports["https"]
    driver = chromium(port, tls_files["cert"], tmp_path / "profile")
    try:
        load(driver, f"https://localhost:{port}/{site_id}")
        protocol = driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].nextHopProtocol")
        title = driver.title
        errors = re.findall(r"ERR_[A-Z_]+", driver.page_source)  # Chromium's error page
        driver.set_script_timeout(240)
        blob = driver.execute_async_script(FETCH_WHOLE, f"https://localhost:{port}{big_file['path']}")
    finally:
        driver.quit()
    assert protocol == "h3", (errors, server.log_tail(20))
    assert "Plone" in title or site_id in title
    assert blob == [big_file["size"], big_file["sha256"], "h3"], (blob, server.log_tail(20))
    access = server.instance / "log" / "access.log"
    assert wait_for(lambda: any("HTTP/3" in line and "Chrome" in line
                                for line in access.read_text().splitlines()), 10,
                    what="Chromium's HTTP/3 request in the access log")


def test_front_page_on_the_epoll_reactor(servers, site_id, tls_files):
    """The module's server runs on uvloop (reactor auto); QUIC rides Twisted's UDP, so
    Twisted's own epoll reactor serves HTTP/3 too."""
    epoll = servers.start("h3-epoll", https=True, http3=True, extra="reactor default\n")
    assert "reactor: epoll" in epoll.log_text().lower() or "epollreactor" in epoll.log_text().lower()

    async def go():
        async with session(epoll.ports["https"], tls_files["ca"]) as client:
            return await client.get(f"/{site_id}")

    response = run(go())
    assert response.status == 200 and b"Plone" in response.body
