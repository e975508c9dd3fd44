"""WebSocket over HTTP/3 (RFC 9220) and the HTTP/3 shutdown drain, without sockets: aioquic's
client objects talking in memory to an ``H3Endpoint`` whose site has a NotificationService
(wsframes.Endpoint: a synchronous pool, a MemoryReactorClock)."""

import json

from aioquic.h3.connection import ErrorCode, Setting
from aioquic.quic import events as quicevents

from tests.robustness import ROWS
from txzserver.server.http2 import OUTBOUND_HIGH_WATER
from txzserver.server.wsh3 import connect_setting
from txzserver.websocket.protocol import MAX_BACKLOG_BYTES

from .h3pair import Pair
from .helpers import Hanging
from .wsframes import TEXT, client_close, client_json, parse_frames


def ws_pair(tmp_path, monkeypatch, **overrides):
    pair = Pair(tmp_path, websocket_of=monkeypatch, **overrides)
    pair.pump()
    return pair


def channel(pair):
    (only,) = set(pair.endpoint.channels.values())
    return only


def messages(pair, stream_id):
    frames, _ = parse_frames(pair.response(stream_id)[1])
    return [json.loads(payload) for opcode, payload in frames if opcode == TEXT]


def test_connect_setting_only_with_the_websocket_service():
    aioquics = {Setting.QPACK_MAX_TABLE_CAPACITY: 4096, Setting.ENABLE_CONNECT_PROTOCOL: 1}
    assert Setting.ENABLE_CONNECT_PROTOCOL not in connect_setting(aioquics, None)
    assert connect_setting({}, object())[Setting.ENABLE_CONNECT_PROTOCOL] == 1


def test_settings_offer_extended_connect_only_with_the_websocket_service(tmp_path, monkeypatch):
    on = ws_pair(tmp_path / "on", monkeypatch)
    assert on.h3.received_settings[Setting.ENABLE_CONNECT_PROTOCOL] == 1
    off = Pair(tmp_path / "off")
    assert Setting.ENABLE_CONNECT_PROTOCOL not in off.h3.received_settings


def test_handshake_is_200_then_frames_are_data_on_the_stream(tmp_path, monkeypatch):
    pair = ws_pair(tmp_path, monkeypatch)
    stream_id = pair.connect(b"/Plone/ws")
    pair.pump()
    headers, _ = pair.response(stream_id)
    assert headers[b":status"] == b"200" and not pair.ended(stream_id)
    assert b"sec-websocket-accept" not in headers and b"upgrade" not in headers
    assert headers[b"x-txzserver-instance"] == b"inst-1"
    assert messages(pair, stream_id)[0]["type"] == "welcome"
    assert len(pair.ws.hub) == 1
    pair.send(stream_id, client_json({"action": "subscribe", "path": "/Plone/news"}))
    assert messages(pair, stream_id)[-1]["subscriptions"] == ["/Plone", "/Plone/news"]
    # a page on another stream of the same connection
    page = pair.get(b"/Plone/front-page")
    pair.pump()
    assert pair.response(page) == ({**pair.response(page)[0], b":status": b"200"},
                                   b"zope /Plone/front-page")
    # the handshake's request says HTTP/3 (access log label h3)
    assert pair.site.counter.by_protocol() == {("h3",): 1}


def test_refusals_are_answered_on_the_stream_and_the_connection_goes_on(tmp_path, monkeypatch):
    pair = ws_pair(tmp_path, monkeypatch)
    origin = pair.connect(b"/Plone/ws", extra=[(b"origin", b"https://evil.example.com")])
    wrong_path = pair.connect(b"/Plone/front-page")
    wrong_protocol = pair.connect(b"/Plone/ws", protocol=b"chat")
    tunnel = pair.connect(b"/Plone/ws", protocol=None)
    pair.pump()
    for stream_id, code in {origin: b"403", wrong_path: b"404", wrong_protocol: b"400",
                            tunnel: b"405"}.items():
        headers, body = pair.response(stream_id)
        assert headers[b":status"] == code, (stream_id, headers, body)
        assert pair.ended(stream_id)
    assert b"evil.example.com" in pair.response(origin)[1]
    assert len(pair.ws.hub) == 0 and not channel(pair)._websockets
    upgrade = pair.get(b"/Plone/ws")  # a GET (HTTP/3 has no Upgrade header)
    pair.pump()
    headers, body = pair.response(upgrade)
    assert headers[b":status"] == b"426" and b"RFC 9220" in body
    assert not pair.terminated()
    assert pair.response(pair.connect(b"/Plone/ws"))  # still served
    pair.pump()
    assert len(pair.ws.hub) == 1


def test_extended_connect_is_refused_without_the_websocket_service(tmp_path):
    pair = Pair(tmp_path)
    stream_id = pair.connect(b"/ws")
    pair.pump()
    headers, body = pair.response(stream_id)
    assert headers[b":status"] == b"400" and b"not enabled" in body


def test_stream_reset_ends_the_websocket_on_the_server(tmp_path, monkeypatch):
    pair = ws_pair(tmp_path, monkeypatch)
    stream_id = pair.connect()
    pair.pump()
    assert len(pair.ws.hub) == 1
    pair.client.stop_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
    pair.client.reset_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
    pair.pump()
    assert len(pair.ws.hub) == 0
    assert not channel(pair)._websockets and not channel(pair).streams
    assert pair.site.counter.idle == 1  # the connection is idle again, not closed


def test_close_frame_is_answered_then_fin(tmp_path, monkeypatch):
    pair = ws_pair(tmp_path, monkeypatch)
    stream_id = pair.connect()
    pair.pump()
    pair.send(stream_id, client_close(1000))
    assert pair.ended(stream_id)
    assert len(pair.ws.hub) == 0 and not channel(pair)._websockets


def test_client_fin_ends_the_websocket(tmp_path, monkeypatch):
    pair = ws_pair(tmp_path, monkeypatch)
    stream_id = pair.connect()
    pair.pump()
    pair.send(stream_id, b"", end_stream=True)
    pair.reactor.advance(0)
    assert len(pair.ws.hub) == 0 and not channel(pair)._websockets


def test_connection_loss_ends_every_websocket(tmp_path, monkeypatch):
    pair = ws_pair(tmp_path, monkeypatch)
    for _ in range(3):
        pair.connect()
    pair.pump()
    assert len(pair.ws.hub) == 3
    pair.client.close(error_code=ErrorCode.H3_NO_ERROR)
    pair.pump()
    assert len(pair.ws.hub) == 0 and not pair.endpoint.channels
    assert pair.site.counter.open == 0


def test_a_client_that_stops_reading_is_paused_then_cut(tmp_path, monkeypatch):
    """The client keeps its stream window shut (64 KiB, never raised) and asks for a status
    message listing 64 long subscriptions again and again: the server sends no more than the
    window, holds OUTBOUND_HIGH_WATER bytes unsent, pauses the WebSocket's producer, and
    resets the stream once the protocol's backlog limit is passed, long before everything
    asked for. Pages on the same connection are answered meanwhile."""
    figures = ROWS["ws_h2"].figures
    assert OUTBOUND_HIGH_WATER == figures["queue_kib"] * 1024
    assert MAX_BACKLOG_BYTES == figures["backlog_mib"] * 1024 * 1024
    pair = ws_pair(tmp_path, monkeypatch, client_window=65536)
    pair.stop_reading()
    stream_id = pair.connect()
    pair.pump()
    h3 = channel(pair)
    reader = h3.streams[stream_id].producer
    long = [f"/Plone/{'x' * 200}-{i}" for i in range(63)]  # with /Plone: 64, the most
    asked = held = 0
    for i in range(600):
        if stream_id not in h3.streams:
            break
        pair.h3.send_data(stream_id, client_json({"action": "subscribe",
                                                  "path": long[min(i, 62)]}), end_stream=False)
        pair.pump()
        asked += 64 * 212
        held = max(held, h3._buffered(stream_id))
        if i == 60:  # the status messages grow with the subscriptions: paused by then
            assert reader.paused
            page = pair.get(b"/Plone/front-page")
            pair.pump()
            assert pair.response(page)[1] == b"zope /Plone/front-page"
    assert stream_id not in h3.streams, "not cut"
    # the unacknowledged buffer: the high water, then the backlog the protocol allows
    assert held <= OUTBOUND_HIGH_WATER + MAX_BACKLOG_BYTES + 64 * 1024, held
    assert asked < (figures["cut_mib"]) * 1024 * 1024, asked
    assert len(pair.ws.hub) == 0
    assert pair.resets(stream_id)
    received = sum(len(event.data) for event in pair.events
                   if isinstance(event, quicevents.StreamDataReceived)
                   and event.stream_id == stream_id)
    assert received <= 65536
    print(f"cut after {asked} bytes of answers asked, {held} bytes held at most")
    assert not pair.terminated()


# The shutdown drain (h3listen.H3Endpoint.drain, H3Channel.drain)


def drain(pair, timeout=30.0):
    done = []
    pair.endpoint.drain(pair.reactor, timeout).addBoth(done.append)
    pair.reactor.advance(0)
    return done


def test_drain_finishes_the_responses_in_flight_then_closes(tmp_path):
    pair = Pair(tmp_path)
    pair.resource = pair.site.resource = Hanging()
    slow = pair.get(b"/slow")
    pair.pump()
    done = drain(pair)
    pair.pump()
    assert channel(pair).goaway == slow + 4
    late = pair.get(b"/late")  # after GOAWAY: refused, never published
    pair.pump()
    assert pair.resets(late) == [ErrorCode.H3_REQUEST_REJECTED]
    assert len(pair.resource.pending) == 1
    assert not done and not pair.terminated()
    pair.resource.finish_all()
    pair.pump()
    pair.reactor.advance(0.1)
    pair.pump()
    assert pair.response(slow) == ({**pair.response(slow)[0], b":status": b"200"}, b"done")
    assert done == [None]
    (closed,) = pair.terminated()
    assert closed.error_code == ErrorCode.H3_NO_ERROR
    assert pair.site.counter.open == 0


def test_drain_takes_no_new_connection(tmp_path):
    pair = Pair(tmp_path)
    drain(pair)
    other = Pair(tmp_path / "other")  # a second client's Initial to the draining endpoint
    for data, _ in other.client.datagrams_to_send(now=pair.reactor.seconds()):
        pair.endpoint.datagramReceived(data, ("127.0.0.1", 40009))
    assert len(set(pair.endpoint.channels.values())) <= 1


def test_drain_closes_at_its_deadline(tmp_path):
    pair = Pair(tmp_path)
    pair.resource = pair.site.resource = Hanging()
    pair.get(b"/forever")
    pair.pump()
    done = drain(pair, timeout=5.0)
    pair.pump()
    assert not done
    pair.reactor.advance(5.1)
    pair.pump()
    assert done == [None]
    assert pair.terminated() and not pair.endpoint.channels
