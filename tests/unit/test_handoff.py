"""txzserver.websocket.handoff: recognising an upgrade, replaying the request, and giving the
connection to the WebSocket protocol (plain and behind a TLS-like ProtocolWrapper)."""

import pytest
from twisted.internet.error import ConnectionDone
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.test.requesthelper import DummyChannel, DummyRequest

from txzserver.config.datatypes import WebSocketSettings
from txzserver.websocket.handoff import hand_off, is_websocket_upgrade, replayed_request
from txzserver.websocket.protocol import NotificationProtocol

from .helpers import HTTP1_CHANNELS, HOST, PEER, feed
from .wsframes import (
    CLOSE, Client, Endpoint, Transport, accept_key, client_json, close_code, handshake, new_key,
)

pytestmark = pytest.mark.usefixtures("each_http1_parser")


def request(method=b"GET", headers=()):
    req = DummyRequest([b"ws"])
    req.method = method
    req.uri = b"/ws?path=/Plone"
    for name, value in headers:
        req.requestHeaders.addRawHeader(name, value)
    return req


UPGRADE = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]


# Recognising an upgrade

@pytest.mark.parametrize("headers", [
    UPGRADE,
    [(b"Upgrade", b"WebSocket"), (b"Connection", b"keep-alive, Upgrade")],
    [(b"upgrade", b"websocket"), (b"connection", b"upgrade")],
])
def test_is_websocket_upgrade(headers):
    assert is_websocket_upgrade(request(headers=headers))


@pytest.mark.parametrize("method, headers", [
    (b"GET", []),
    (b"GET", [(b"Upgrade", b"websocket")]),
    (b"GET", [(b"Connection", b"Upgrade")]),
    (b"GET", [(b"Upgrade", b"h2c"), (b"Connection", b"Upgrade")]),
    (b"POST", UPGRADE),
    (b"HEAD", UPGRADE),
])
def test_is_not_websocket_upgrade(method, headers):
    assert not is_websocket_upgrade(request(method, headers))


def test_replayed_request_keeps_method_uri_and_every_header():
    req = request(headers=[*UPGRADE, (b"Sec-WebSocket-Key", b"abc=="),
                           (b"Cookie", b"a=1"), (b"Cookie", b"b=2")])
    data = replayed_request(req)
    assert data.startswith(b"GET /ws?path=/Plone HTTP/1.1\r\n")
    assert data.endswith(b"\r\n\r\n")
    lines = data.split(b"\r\n")
    assert b"Sec-Websocket-Key: abc==" in lines
    assert b"Upgrade: websocket" in lines
    assert b"Cookie: a=1,b=2" in lines


def test_hand_off_refuses_a_channel_that_is_not_http11():
    """HTTP/2 streams have no transport of their own to take over."""
    req = request(headers=UPGRADE)
    req.channel = DummyChannel()
    assert not hasattr(req.channel, "release_transport")
    assert hand_off(req, NotificationProtocol()) is False
    req.channel.transport = None
    assert hand_off(req, NotificationProtocol()) is False


# Giving the connection away

@pytest.fixture
def endpoint(monkeypatch):
    return Endpoint(monkeypatch, websocket=WebSocketSettings(ping_interval=0))


def test_the_transport_now_delivers_to_the_websocket_protocol(endpoint):
    client = endpoint.connect(b"/ws")
    assert client.status == 101
    assert isinstance(client.transport.protocol, NotificationProtocol)
    assert client.channel.channel is None  # the HTTP channel was let go
    # HTTP/1.1's producer registration was released (the WebSocket may register its own).
    assert not isinstance(client.transport.producer, http.HTTPChannel)
    assert client.head.count(b"HTTP/1.1 ") == 1  # only Autobahn answered, Twisted Web did not
    assert client.messages()[0]["type"] == "welcome"
    client.send_json({"action": "subscribe", "path": "/Plone/news"})
    assert client.messages()[0]["type"] == "status"


def test_handshake_fed_byte_by_byte(endpoint):
    transport = Transport(hostAddress=HOST, peerAddress=PEER)
    channel = endpoint.site.buildProtocol(PEER)
    channel.makeConnection(transport)
    key = new_key()
    feed(channel, handshake(b"/ws", key=key), bytewise=True)
    client = Client(channel, transport, key)
    assert client.status == 101
    assert client.headers[b"sec-websocket-accept"] == accept_key(key)
    assert client.messages()[0]["type"] == "welcome"


def test_http_idle_timeout_no_longer_applies(endpoint):
    client = endpoint.connect(b"/ws")
    assert client.status == 101
    assert not any("timedOut" in repr(call) for call in endpoint.reactor.getDelayedCalls())
    endpoint.reactor.advance(endpoint.settings.idle_timeout * 10)
    assert not client.transport.disconnecting
    client.send_json({"action": "subscribe", "path": "/Plone/news"})
    assert [m["type"] for m in client.messages()] == ["welcome", "status"]


def test_requests_before_the_upgrade_on_the_same_connection(endpoint):
    transport = Transport(hostAddress=HOST, peerAddress=PEER)
    channel = endpoint.site.buildProtocol(PEER)
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /Plone HTTP/1.1\r\nHost: example.org\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert isinstance(channel.channel, HTTP1_CHANNELS)
    transport.clear()
    key = new_key()
    channel.dataReceived(handshake(b"/ws", key=key))
    client = Client(channel, transport, key)
    assert client.status == 101
    assert client.messages()[0]["type"] == "welcome"


def test_websocket_leaves_the_http_connection_count(endpoint):
    """WebSockets count against <websocket> max-connections (the hub), not HTTP's."""
    client = endpoint.connect(b"/ws")
    assert endpoint.open_connections == 0
    assert len(endpoint.hub) == 1
    client.send(client_json({"action": "subscribe", "path": "/Plone/x"}))
    client.lose()
    assert endpoint.open_connections == 0
    assert len(endpoint.hub) == 0


def test_refused_handshake_releases_the_slot(endpoint):
    client = endpoint.connect(b"/ws", origin=b"https://evil.example")
    assert client.status == 403
    assert endpoint.open_connections == 0  # handed over: no longer an HTTP connection
    client.lose()
    assert endpoint.open_connections == 0
    assert len(endpoint.hub) == 0


def test_hand_off_behind_a_protocol_wrapper(endpoint):
    """TLS: TLSMemoryBIOProtocol is a ProtocolWrapper feeding our channel; it must feed the
    WebSocket protocol afterwards."""
    wrapper = WrappingFactory(endpoint.site).buildProtocol(PEER)
    transport = Transport(hostAddress=HOST, peerAddress=PEER)
    wrapper.makeConnection(transport)
    channel = wrapper.wrappedProtocol
    key = new_key()
    wrapper.dataReceived(handshake(b"/ws", key=key))
    client = Client(channel, transport, key)
    assert client.status == 101
    assert isinstance(wrapper.wrappedProtocol, NotificationProtocol)
    assert client.messages()[0]["type"] == "welcome"
    wrapper.dataReceived(client_json({"action": "unsubscribe", "path": "/Plone"}))
    assert client.messages()[0]["subscriptions"] == []
    endpoint.service.close_all()
    [(opcode, payload)] = client.frames()
    assert (opcode, close_code(payload)) == (CLOSE, 1001)
    assert endpoint.open_connections == 0
    wrapper.connectionLost(Failure(ConnectionDone()))
    assert endpoint.open_connections == 0
    assert len(endpoint.hub) == 0
