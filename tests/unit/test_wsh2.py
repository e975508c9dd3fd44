"""txzserver.server.wsh2 and H2Channel's extended CONNECT (RFC 8441), without sockets: a
ZopeSite with the NotificationService on a StringTransport, an h2 client, a MemoryReactorClock."""

import json

import h2.errors
import h2.events
import h2.settings
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.internet.interfaces import IConsumer, ITransport
from zope.interface.verify import verifyClass

from tests.robustness import ROWS
from txzserver.server.http2 import OUTBOUND_HIGH_WATER
from txzserver.server.wsstream import (
    StreamTransport, as_upgrade, connect_request, parse_response_head, refusal,
)

from txzserver.websocket.protocol import MAX_BACKLOG_BYTES

from .helpers import Echo, H2Client, connect, make_site, responses, spin
from .wsframes import TEXT, Endpoint, client_close, client_json, parse_frames


class Service:
    def site_for(self, path):
        return "Plone" if path in ("/ws", "/Plone/ws") else None


def test_connect_request_and_refusals():
    assert connect_request([(b":method", b"GET"), (b":path", b"/ws")]) is None
    target = connect_request([(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                              (b":path", b"/Plone/ws?path=/Plone/news")])
    assert target == (b"websocket", b"/Plone/ws?path=/Plone/news")
    assert refusal(target, Service()) is None
    assert refusal(target, None)[0] == 400
    assert refusal((b"chat", b"/ws"), Service()) == (400, "unsupported :protocol 'chat' (only websocket)")
    assert refusal((b"websocket", b"/Plone/page"), Service())[0] == 404
    assert refusal((None, None), Service())[0] == 405


def test_as_upgrade_is_the_http1_handshake():
    fields = as_upgrade([(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":path", b"/ws"),
                         (b"sec-websocket-version", b"13")], key=b"k")
    assert (b":method", b"GET") in fields and all(name != b":protocol" for name, _ in fields)
    assert {(b"upgrade", b"websocket"), (b"connection", b"upgrade"),
            (b"sec-websocket-key", b"k")} <= set(fields)


def test_parse_response_head():
    status, reason, headers = parse_response_head(
        b"HTTP/1.1 403 origin https://x is not allowed\r\nRetry-After: 5")
    assert (status, reason, headers) == (403, "origin https://x is not allowed", [(b"retry-after", b"5")])


def test_interfaces():
    assert verifyClass(ITransport, StreamTransport)
    assert verifyClass(IConsumer, StreamTransport)


class H2Endpoint:
    """An h2c connection to an Endpoint's resource (WebSocket service on), and its client."""

    def __init__(self, monkeypatch, **overrides):
        self.endpoint = Endpoint(monkeypatch, **overrides)
        self.site = make_site(self.endpoint.resource, settings=self.endpoint.settings, h2c=True,
                              reactor=self.endpoint.reactor)
        self.protocol, self.transport = connect(self.site)
        self.client = H2Client(self.protocol, self.transport, self.site.reactor)
        self.client.flush()
        self.seen = []
        self.events()

    def events(self):
        events = self.client.events()
        self.seen += events
        return events

    def websocket(self, path="/ws", headers=()):
        stream_id = self.client.conn.get_next_available_stream_id()
        self.client.conn.send_headers(stream_id, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
            (":path", path), (":authority", "example.org"), ("sec-websocket-version", "13"),
            *headers])
        self.client.flush()
        return stream_id

    def send(self, stream_id, data):
        self.client.conn.send_data(stream_id, data)
        self.client.flush()

    def answer(self, stream_id):
        return responses(self.seen).get(stream_id)

    def messages(self, stream_id):
        frames, _ = parse_frames(self.answer(stream_id)["body"])
        return [json.loads(payload) for opcode, payload in frames if opcode == TEXT]


def test_settings_offer_extended_connect_only_with_the_websocket_service(monkeypatch):
    on = H2Endpoint(monkeypatch)
    code = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
    assert on.client.conn.remote_settings.get(code) == 1
    site = make_site(Echo(), h2c=True)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    assert client.conn.remote_settings.get(code, 0) == 0


def test_handshake_is_200_then_frames_are_data_on_the_stream(monkeypatch):
    h2e = H2Endpoint(monkeypatch)
    stream_id = h2e.websocket()
    h2e.events()
    answer = h2e.answer(stream_id)
    assert answer["status"] == 200 and not answer["ended"]
    assert b"sec-websocket-accept" not in answer["headers"]
    assert answer["headers"][b"x-txzserver-instance"] == b"inst-1"
    assert h2e.messages(stream_id)[0]["type"] == "welcome"
    assert len(h2e.endpoint.hub) == 1
    h2e.send(stream_id, client_json({"action": "subscribe", "path": "/Plone/news"}))
    h2e.events()
    assert h2e.messages(stream_id)[-1]["subscriptions"] == ["/Plone", "/Plone/news"]


def test_origin_refused_on_the_stream(monkeypatch):
    h2e = H2Endpoint(monkeypatch)
    stream_id = h2e.websocket(headers=[("origin", "https://evil.example.com")])
    h2e.events()
    answer = h2e.answer(stream_id)
    assert answer["status"] == 403 and b"evil.example.com" in answer["body"]
    spin(h2e.site.reactor)
    assert len(h2e.endpoint.hub) == 0 and not h2e.transport.disconnecting


def test_rst_stream_ends_the_websocket(monkeypatch):
    h2e = H2Endpoint(monkeypatch)
    stream_id = h2e.websocket()
    h2e.events()
    assert len(h2e.endpoint.hub) == 1
    h2e.client.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
    h2e.client.flush()
    assert len(h2e.endpoint.hub) == 0
    assert not h2e.protocol.channel._websockets


def test_close_frame_is_answered_then_end_stream(monkeypatch):
    h2e = H2Endpoint(monkeypatch)
    stream_id = h2e.websocket()
    h2e.events()
    h2e.send(stream_id, client_close(1000))
    spin(h2e.site.reactor)
    h2e.events()
    assert h2e.answer(stream_id)["ended"]
    assert len(h2e.endpoint.hub) == 0 and not h2e.protocol.channel._websockets


def test_connection_loss_ends_every_websocket(monkeypatch):
    h2e = H2Endpoint(monkeypatch)
    for _ in range(3):
        h2e.websocket()
    h2e.events()
    assert len(h2e.endpoint.hub) == 3
    h2e.protocol.connectionLost(Failure(ConnectionLost("gone")))
    assert len(h2e.endpoint.hub) == 0


def test_a_stream_whose_window_is_shut_pauses_the_protocol_and_is_cut(monkeypatch):
    """The client never opens the stream's window: the server queues a bounded amount, pauses
    the WebSocket's producer, and resets the stream once the backlog limit is passed."""
    figures = ROWS["ws_h2"].figures
    assert OUTBOUND_HIGH_WATER == figures["queue_kib"] * 1024
    assert MAX_BACKLOG_BYTES == figures["backlog_mib"] * 1024 * 1024
    h2e = H2Endpoint(monkeypatch)
    stream_id = h2e.websocket()
    h2e.events()
    channel = h2e.protocol.channel
    reader = channel.streams[stream_id].producer
    long = [f"/Plone/{'x' * 200}-{i}" for i in range(63)]  # with /Plone: 64, the most
    for i in range(400):
        if stream_id not in channel.streams:
            break
        h2e.send(stream_id, client_json({"action": "subscribe", "path": long[min(i, 62)]}))
        h2e.events()  # the server's WINDOW_UPDATEs for what it read; its DATA not acknowledged
        if i == 100:
            assert reader.paused
    h2e.events()
    assert h2e.answer(stream_id)["reset"] is not None
    assert len(h2e.endpoint.hub) == 0
