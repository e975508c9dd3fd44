"""WebSocket over HTTP/2 (RFC 8441) against a real `txzserver serve` on a real Plone site: the
h2 library as the client, over TLS (ALPN h2, the test CA) and over h2c, several WebSockets and
page requests on one connection; content made through Zope reaches the stream."""

import time

import h2.errors
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.robustness import ROWS
from tests.support.h2ws import H2WebSocketClient
from tests.support.restapi import add_users, api
from tests.support.server import wait_for
from tests.support.wsclient import basic_field

PASSWORD = "secret-Passw0rd"
FIGURES = ROWS["ws_h2"].figures
CONF = """<websocket>
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
    server = servers.start("wsh2", threads=2, https=True, extra=CONF)
    add_users(server, {"rita": ["Member", "Reviewer"], "eddie": ["Member", "Contributor", "Editor"]},
              PASSWORD)
    return server


@pytest.fixture(params=["h2", "h2c"])
def client(request, server, tls_files):
    if request.param == "h2":
        client = H2WebSocketClient(server.ports["https"], ca=tls_files["ca"])
    else:
        client = H2WebSocketClient(server.port)
    client.until(lambda: client.settings_received, what="the server's SETTINGS")
    yield client
    client.close()


def access_lines(server):
    return (server.instance / "log" / "access.log").read_text(errors="replace")


def subscribers(server):
    answer = httpx.get(server.url("/metrics", kind="metrics"), timeout=10)
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "txzserver_websocket_subscribers":
                return sample.value
    raise AssertionError("no txzserver_websocket_subscribers in the metrics")


def test_settings_offer_extended_connect_and_the_handshake_is_200(client, server):
    assert client.enable_connect_protocol == 1
    stream_id = client.websocket("/Plone/ws")
    stream = client.streams[stream_id]
    assert stream.status == 200
    assert "sec-websocket-accept" not in stream.headers  # RFC 8441 5: none in HTTP/2
    assert stream.headers.get("x-txzserver-instance")
    welcome = stream.messages[0]
    assert welcome["type"] == "welcome" and welcome["user"] is None and welcome["site"] == "/Plone"
    client.send_text(stream_id, {"action": "subscribe", "path": "/Plone/news"})
    status = client.wait_message(stream_id, type="status")
    assert status["subscriptions"] == ["/Plone", "/Plone/news"]
    # the access log is written in batches: wait for the line
    wait_for(lambda: '"CONNECT /Plone/ws HTTP/2" 200' in access_lines(server), 30,
             what="the WebSocket's access line")


def test_content_events_reach_the_streams_by_guard_next_to_page_requests(client, server):
    """Anonymous and a Reviewer on two WebSocket streams of one connection, page requests on
    others: a page submitted for review through Zope reaches the reviewer only; once
    published, both. Both WebSockets stay open while the pages are answered."""
    anonymous = client.websocket("/Plone/ws")
    rita = client.websocket("/Plone/ws", headers=[basic("rita")])
    assert client.streams[rita].messages[0]["user"] == "rita"
    name = f"review-{client.scheme}-{time.monotonic_ns()}"
    api(server, "POST", "/Plone", user=("eddie", PASSWORD),
        json={"@type": "Document", "id": name, "title": "Please review me"})
    api(server, "POST", f"/Plone/{name}/@workflow/submit", user=("eddie", PASSWORD))
    for _ in range(3):
        status, body = client.get("/Plone/ok")
        assert status == 200, body[:200]
    event = client.wait_message(rita, type="transition", path=f"/Plone/{name}")
    assert event["review_state"] == "pending" and event["title"] == "Please review me"
    api(server, "POST", f"/Plone/{name}/@workflow/publish")
    client.wait_message(anonymous, type="transition", path=f"/Plone/{name}", review_state="published")
    client.wait_message(rita, type="transition", path=f"/Plone/{name}", review_state="published")
    seen = [m for m in client.streams[anonymous].messages if m.get("path") == f"/Plone/{name}"]
    assert all(m.get("review_state") != "pending" for m in seen), seen
    assert not client.streams[anonymous].ended and not client.streams[rita].ended


def test_refusals_are_answered_on_the_stream_and_the_connection_goes_on(client):
    origin = client.connect("/Plone/ws", headers=[("origin", "https://evil.example.com")])
    wrong_path = client.connect("/Plone/front-page")
    wrong_protocol = client.connect("/Plone/ws", protocol="chat")
    tunnel = client.connect(None, protocol=None)
    refused = {origin: 403, wrong_path: 404, wrong_protocol: 400, tunnel: 405}
    for stream_id, code in refused.items():
        stream = client.streams[stream_id]
        client.until(lambda s=stream: s.status is not None, what=f"an answer on stream {stream_id}")
        assert stream.status == code, (stream_id, stream.status, bytes(stream.body))
    client.until(lambda: all(client.streams[s].ended or client.streams[s].reset is not None
                             for s in refused))
    assert b"evil.example.com" in client.streams[origin].body or client.streams[origin].status == 403
    upgrade = client.request("GET", "/Plone/ws", headers=[("upgrade", "websocket")])
    client.until(lambda: client.streams[upgrade].ended, what="the Upgrade answer")
    assert client.streams[upgrade].status == 426
    assert b"extended CONNECT" in bytes(client.streams[upgrade].body)
    assert client.get("/Plone/ok")[0] == 200
    assert client.websocket("/Plone/ws")
    assert client.terminated is None


def test_rst_stream_ends_the_websocket_on_the_server(client, server):
    before = subscribers(server)
    stream_id = client.websocket("/Plone/ws", headers=[basic("rita")])
    wait_for(lambda: subscribers(server) == before + 1, 30, what="the subscriber counted")
    client.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    wait_for(lambda: subscribers(server) == before, 30, what="the subscriber gone after RST_STREAM")
    assert client.get("/Plone/ok")[0] == 200  # the connection is still served


def test_close_frame_ends_the_stream(client, server):
    stream_id = client.websocket("/Plone/ws")
    client.send_close(stream_id)
    stream = client.streams[stream_id]
    client.until(lambda: stream.ended, what="END_STREAM after the close handshake")
    assert stream.closed is not None and stream.closed[0] == 1000, stream.closed


def test_a_websocket_that_stops_reading_is_cut_and_the_connection_goes_on(client, server):
    """The client keeps one WebSocket stream's window shut and asks for 8 MB of answers on it
    (63 long subscriptions, then the same subscribe again and again: each status message lists
    them all). The server sends no more than the window, queues a bounded backlog, then resets
    that stream (RST_STREAM); pages on the same connection are answered meanwhile and after."""
    slow = client.websocket("/Plone/ws")
    client.reading[slow] = False
    stream = client.streams[slow]
    rss_before = server.rss()
    paths = [f"/Plone/{'x' * 200}-{i}" for i in range(63)]  # with /Plone: 64, the most
    requested = 0
    reply = 64 * (200 + 12)  # about the bytes of a status message listing the 64 subscriptions
    for i in range(FIGURES["asked_mb"] * 1000 * 1000 // reply + 1):
        path = paths[min(i, 62)]
        message_size = 260
        client.until(lambda: stream.reset is not None or stream.ended
                     or client.conn.local_flow_control_window(slow) > message_size,
                     what="room to send on the slow stream")
        if stream.reset is not None or stream.ended:
            break
        client.send_text(slow, {"action": "subscribe", "path": path})
        requested += reply
        if i == 20:  # the stream is stalled by then (its window holds about 5 answers)
            assert client.get("/Plone/ok")[0] == 200  # served while the slow stream is stalled
        client.pump(0.01)
    client.until(lambda: stream.reset is not None or stream.ended, 60,
                 what="the server cutting the stream that does not read")
    window = 65535  # the client's initial stream window (h2's default), never opened
    assert stream.received <= window, stream.received
    # Cut once the stream's queue (256 KiB) and the protocol's backlog limit (1 MiB) are full,
    # long before the 8 MB asked for: what the server holds for a stream is bounded.
    assert stream.reset is not None, "not reset"
    assert requested < FIGURES["cut_mib"] * 1024 * 1024, requested
    print(f"cut after {requested} bytes of answers asked; server RSS grew"
          f" {server.rss() - rss_before} bytes")
    assert client.get("/Plone/ok")[0] == 200
    assert client.websocket("/Plone/ws")
