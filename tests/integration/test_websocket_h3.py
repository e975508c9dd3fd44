"""WebSocket over HTTP/3 (RFC 9220) against a real `txzserver serve` on a real Plone site, with
aioquic's client: the handshake, content made through Zope reaching the streams by guard,
refusals on the stream, a reset, a client that stops reading; the `h3` label and the stream
limit in /metrics; and the HTTP/3 drain on SIGTERM (a download in flight finishes)."""

import asyncio
import json
import signal
import time

import httpx
import pytest
from aioquic.h3.connection import ErrorCode
from prometheus_client.parser import text_string_to_metric_families

from tests.robustness import ROWS
from tests.support.h3client import run
from tests.support.h3client import session as page_session
from tests.support.browser import load
from tests.support.h3browser import chromium
from tests.support.h3ws import session
from tests.support.restapi import add_users, api
from tests.support.server import wait_for
from tests.support.wsclient import basic_field

PASSWORD = "secret-Passw0rd"
FIGURES = ROWS["ws_h2"].figures
MAX_STREAMS = 16
CONF = f"""http2-max-concurrent-streams {MAX_STREAMS}
<websocket>
  path /ws
</websocket>
<metrics-server>
  address 127.0.0.1:0
  path /metrics
</metrics-server>
"""


def basic(user):
    return basic_field(user, PASSWORD)


@pytest.fixture(scope="module")
def server(servers):
    server = servers.start("wsh3", threads=2, https=True, http3=True, extra=CONF)
    add_users(server, {"rita": ["Member", "Reviewer"], "eddie": ["Member", "Contributor", "Editor"]},
              PASSWORD)
    return server


@pytest.fixture
def h3(server, tls_files):
    """Run ``test(client)`` on one WebSocket-capable HTTP/3 connection to the server."""
    def go(test, **options):
        async def main():
            async with session(server.ports["https"], tls_files["ca"], **options) as client:
                return await test(client)
        return run(main())
    return go


def metric(server, name, **labels):
    answer = httpx.get(server.url("/metrics", kind="metrics"), timeout=10)
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def access_lines(server):
    return (server.instance / "log" / "access.log").read_text(errors="replace")


def test_settings_offer_extended_connect_and_the_handshake_is_200(h3, server):
    async def test(client):
        assert await client.enable_connect_protocol() == 1
        stream_id = await client.websocket("/Plone/ws")
        stream = client.websockets[stream_id]
        client.send_text(stream_id, {"action": "subscribe", "path": "/Plone/news"})
        status = await client.wait_message(stream_id, type="status")
        return stream, status

    stream, status = h3(test)
    assert stream.status == 200
    assert b"sec-websocket-accept" not in stream.headers  # RFC 9220 3, as RFC 8441 5
    assert stream.headers.get(b"x-txzserver-instance")
    welcome = stream.messages[0]
    assert welcome["type"] == "welcome" and welcome["user"] is None and welcome["site"] == "/Plone"
    assert status["subscriptions"] == ["/Plone", "/Plone/news"]
    wait_for(lambda: '"CONNECT /Plone/ws HTTP/3" 200' in access_lines(server), 30,
             what="the WebSocket's access line")


def test_content_events_reach_the_streams_by_guard_next_to_page_requests(h3, server):
    """Anonymous and a Reviewer on two WebSocket streams of one QUIC connection, pages on
    others: a page submitted for review through Zope reaches the reviewer only; once
    published, both."""
    name = f"review-h3-{time.monotonic_ns()}"

    async def test(client):
        anonymous = await client.websocket("/Plone/ws")
        rita = await client.websocket("/Plone/ws", headers=[basic("rita")])
        assert client.websockets[rita].messages[0]["user"] == "rita"
        await asyncio.to_thread(api, server, "POST", "/Plone", user=("eddie", PASSWORD),
                                json={"@type": "Document", "id": name, "title": "Please review me"})
        await asyncio.to_thread(api, server, "POST", f"/Plone/{name}/@workflow/submit",
                                user=("eddie", PASSWORD))
        pages = [await client.get("/Plone/ok") for _ in range(3)]
        pending = await client.wait_message(rita, type="transition", path=f"/Plone/{name}")
        await asyncio.to_thread(api, server, "POST", f"/Plone/{name}/@workflow/publish")
        await client.wait_message(anonymous, type="transition", path=f"/Plone/{name}",
                                  review_state="published")
        await client.wait_message(rita, type="transition", path=f"/Plone/{name}",
                                  review_state="published")
        return pages, pending, client.websockets[anonymous], client.websockets[rita]

    pages, pending, anonymous, rita = h3(test)
    assert [page.status for page in pages] == [200] * 3
    assert pending["review_state"] == "pending" and pending["title"] == "Please review me"
    seen = [m for m in anonymous.messages if m.get("path") == f"/Plone/{name}"]
    assert all(m.get("review_state") != "pending" for m in seen), seen
    assert not anonymous.ended and not rita.ended


def test_refusals_are_answered_on_the_stream_and_the_connection_goes_on(h3):
    async def test(client):
        refused = {
            client.connect_stream("/Plone/ws", headers=[("origin", "https://evil.example.com")]): 403,
            client.connect_stream("/Plone/front-page"): 404,
            client.connect_stream("/Plone/ws", protocol=b"chat"): 400,
            client.connect_stream("/Plone/ws", protocol=None): 405,
        }
        streams = [client.websockets[stream_id] for stream_id in refused]
        await client.until(lambda: all(s.ended or s.reset is not None for s in streams),
                           what="the refusals")
        upgrade = await client.get("/Plone/ws")  # a GET: HTTP/3 has no Upgrade
        page = await client.get("/Plone/ok")
        after = await client.websocket("/Plone/ws")
        return refused, client.websockets, upgrade, page, after, client.closed.done()

    refused, streams, upgrade, page, after, closed = h3(test)
    for stream_id, code in refused.items():
        assert streams[stream_id].status == code, (stream_id, bytes(streams[stream_id].body))
    origin = next(iter(refused))
    assert b"evil.example.com" in streams[origin].body
    assert upgrade.status == 426 and b"RFC 9220" in upgrade.body
    assert page.status == 200 and after is not None and not closed


def test_reset_ends_the_websocket_on_the_server(h3, server):
    before = metric(server, "txzserver_websocket_subscribers")

    async def test(client):
        stream_id = await client.websocket("/Plone/ws", headers=[basic("rita")])
        await asyncio.to_thread(wait_for, lambda: metric(
            server, "txzserver_websocket_subscribers") == before + 1, 30, 0.1,
            "the subscriber counted")
        client.reset(stream_id)
        await asyncio.to_thread(wait_for, lambda: metric(
            server, "txzserver_websocket_subscribers") == before, 30, 0.1,
            "the subscriber gone after the reset")
        return await client.get("/Plone/ok")

    assert h3(test).status == 200  # the connection is still served


def test_close_frame_ends_the_stream(h3):
    async def test(client):
        stream_id = await client.websocket("/Plone/ws")
        client.send_close(stream_id)
        stream = client.websockets[stream_id]
        await client.until(lambda: stream.ended, what="the FIN after the close handshake")
        return stream

    stream = h3(test)
    assert stream.closed is not None and stream.closed[0] == 1000, stream.closed


def test_a_websocket_that_stops_reading_is_cut_and_the_connection_goes_on(h3, server):
    """The client keeps its stream window shut (64 KiB, never raised: QUIC flow control) and
    asks for 8 MB of answers on one WebSocket: the server sends no more than the window,
    pauses the protocol, and resets that stream once its backlog limit is passed; pages on
    the same connection are answered meanwhile and after."""
    window = 65536
    paths = [f"/Plone/{'x' * 200}-{i}" for i in range(63)]  # with /Plone: 64, the most
    reply = 64 * (200 + 12)  # about the bytes of a status message listing them all

    async def test(client):
        client.shut_window()
        slow = await client.websocket("/Plone/ws")
        stream = client.websockets[slow]
        requested, during = 0, None
        for i in range(FIGURES["asked_mb"] * 1000 * 1000 // reply + 1):
            if stream.reset is not None or stream.ended:
                break
            client.send_text(slow, {"action": "subscribe", "path": paths[min(i, 62)]})
            requested += reply
            if i == 60:  # the stream is stalled by then
                during = await client.get("/Plone/ok")
            await asyncio.sleep(0.01)
        await client.until(lambda: stream.reset is not None or stream.ended, 60,
                           "the server cutting the stream that does not read")
        after = await client.get("/Plone/ok")
        return stream, requested, during, after

    stream, requested, during, after = h3(test, max_stream_data=window)
    assert stream.reset is not None, "not reset"
    assert stream.received <= window, stream.received
    assert requested < FIGURES["cut_mib"] * 1024 * 1024, requested
    assert during.status == 200 and after.status == 200
    print(f"cut after {requested} bytes of answers asked")


def test_metrics_label_h3_and_the_stream_limit(h3, server):
    """/metrics counts the QUIC connection and its requests under protocol="h3"; the
    connection allows http2-max-concurrent-streams request streams at once, and more
    requests than that at once are all answered, in turn."""
    async def test(client):
        connections = await asyncio.to_thread(metric, server, "txzserver_http_connections",
                                              protocol="h3")
        limit = client._quic._remote_max_streams_bidi
        answers = await asyncio.gather(*(client.get("/Plone/ok") for _ in range(MAX_STREAMS * 2)))
        return connections, limit, answers

    connections, limit, answers = h3(test)
    assert connections >= 1
    assert limit == MAX_STREAMS
    assert [answer.status for answer in answers] == [200] * (MAX_STREAMS * 2)
    wait_for(lambda: (metric(server, "txzserver_http_requests_total", protocol="h3",
                             status="200") or 0) >= MAX_STREAMS * 2, 30, 0.2,
             what="the h3 requests counted")


def test_sigterm_drains_http3_the_download_in_flight_finishes(servers, big_file, tls_files):
    """SIGTERM while 20 MiB of the File are downloaded over HTTP/3: GOAWAY, the response is
    sent whole and acknowledged, then CONNECTION_CLOSE without error, and the process exits 0.
    (HTTP/3 costs the server about 110 s of CPU per GiB: a few MB/s on a busy machine.)"""
    server = servers.start("h3-drain", https=True, http3=True, extra="shutdown-timeout 600s\n")
    wanted = 20 * 1024 * 1024

    async def go():
        async with page_session(server.ports["https"], tls_files["ca"], idle_timeout=120) as client:
            response = client.request(big_file["path"],
                                      headers=[(b"range", b"bytes=0-%d" % (wanted - 1))])
            while response.size < 1024 * 1024:
                await asyncio.sleep(0.05)
            server.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(response.done, 600)
            closed = await asyncio.wait_for(client.closed, 60)
            return response, closed

    response, closed = run(go(), timeout=900)
    assert response.status == 206, response.headers
    assert response.size == wanted
    assert closed.error_code == ErrorCode.H3_NO_ERROR, closed
    assert server.wait_exit(60) == 0


WEBSOCKET_SCRIPT = """
const done = arguments[arguments.length - 1];
const ws = new WebSocket(arguments[0]);
ws.onmessage = (event) => { done(event.data); ws.close(); };
ws.onerror = () => done("error");
"""


@pytest.mark.parametrize("features", [(), ("EnableWebsocketsOverHttp3",)],
                         ids=["default", "EnableWebsocketsOverHttp3"])
def test_chromium_opens_the_websocket_over_http3_only_with_its_feature(
        server, tls_files, tmp_path, features):
    """Chromium 156 has RFC 9220 behind a feature that is off by default: with it, the page's
    QUIC connection (which announced extended CONNECT) carries the WebSocket; without it, the
    WebSocket goes over TCP. The welcome message arrives either way."""
    port = server.ports["https"]
    marker = f"probe-{time.monotonic_ns()}"
    driver = chromium(port, tls_files["cert"], tmp_path / "profile", features)
    try:
        driver.set_script_timeout(30)
        load(driver, f"https://localhost:{port}/Plone")
        page = driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].nextHopProtocol")
        welcome = driver.execute_async_script(
            WEBSOCKET_SCRIPT, f"wss://localhost:{port}/Plone/ws?{marker}=1")
        driver.get(f"https://localhost:{port}/Plone/@@ok?{marker}=after")  # flushes the log
    finally:
        driver.quit()
    assert page == "h3"
    assert welcome != "error" and json.loads(welcome)["type"] == "welcome"
    wait_for(lambda: f"{marker}=after" in access_lines(server), 30, what="the page after")
    over_h3 = [line for line in access_lines(server).splitlines()
               if f"CONNECT /Plone/ws?{marker}=1 HTTP/3\" 200" in line]
    if features:
        assert over_h3 and "HeadlessChrome/156" in over_h3[0], over_h3
    else:
        assert not over_h3
