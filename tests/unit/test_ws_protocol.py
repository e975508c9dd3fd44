"""txzserver.websocket.protocol: the handshake (principal looked up once, in the pool), the
welcome, delivery through the hub, client messages, limits and the end of a connection.

Everything runs over StringTransports: see wsframes.Endpoint.
"""

import json

import pytest

from txzserver.bus import Event
from txzserver.config.datatypes import WebSocketSettings
from txzserver.websocket.protocol import MAX_SUBSCRIPTIONS, NotificationProtocol

from .wsframes import (
    BINARY, CLOSE, PING, Endpoint, ZopeApp, accept_key, client_close, client_frame, client_json,
    close_code,
)


@pytest.fixture
def endpoint(monkeypatch):
    return Endpoint(monkeypatch)


def opened(endpoint, path=b"/ws", **options):
    """A connected client whose welcome has been read; (client, welcome)."""
    client = endpoint.connect(path, **options)
    assert client.status == 101, client.status_line
    [welcome] = client.messages()
    return client, welcome


def event(path="/Plone/news/item", guard=("Member",), **fields):
    return Event("created", path, title="Item", guard=frozenset(guard), **fields)


# Handshake

def test_handshake_answers_101_with_the_accept_key_then_a_welcome(endpoint):
    client = endpoint.connect(b"/ws")
    assert client.status_line.startswith(b"HTTP/1.1 101 ")
    assert client.headers[b"sec-websocket-accept"] == accept_key(client.key)
    assert client.headers[b"upgrade"].lower() == b"websocket"
    assert client.headers[b"x-txzserver-instance"] == b"inst-1"
    assert isinstance(client.protocol, NotificationProtocol)
    assert client.messages() == [{"type": "welcome", "instance": "inst-1", "user": "jane",
                                  "site": "/Plone", "subscriptions": ["/Plone"]}]
    assert not client.transport.disconnecting


def test_the_101_and_the_welcome_leave_in_one_write(endpoint):
    from .helpers import HOST, PEER, connect, spin
    from .wsframes import Transport, handshake

    class Writes(Transport):
        def write(self, data):
            self.writes = getattr(self, "writes", []) + [bytes(data)]
            super().write(data)

    transport = Writes(hostAddress=HOST, peerAddress=PEER)
    channel, _ = connect(endpoint.site, transport)
    channel.dataReceived(handshake(b"/ws"))
    spin(endpoint.reactor)
    [write] = transport.writes
    assert write.startswith(b"HTTP/1.1 101 ") and b'"type": "welcome"' in write


def test_the_http_side_is_freed_at_the_hand_off_without_the_collector(endpoint):
    import gc
    import weakref

    from .helpers import HOST, PEER, connect, spin
    from .wsframes import Transport, handshake

    transport = Transport(hostAddress=HOST, peerAddress=PEER)
    outer, _ = connect(endpoint.site, transport)
    gc.disable()
    try:
        outer.dataReceived(handshake(b"/ws"))
        spin(endpoint.reactor)
        assert transport.value().startswith(b"HTTP/1.1 101 ")
        refs = [weakref.ref(outer)]
        del outer
        assert [ref() for ref in refs] == [None]  # no cycle left: reference counting freed it
    finally:
        gc.enable()


def test_a_refused_handshake_is_not_held_back(endpoint):
    client = endpoint.connect(b"/ws", origin=b"https://elsewhere.example")
    assert client.status == 403
    assert client.transport.disconnecting


def test_principal_is_looked_up_once_in_the_pool_with_the_handshake_credentials(endpoint):
    client, _ = opened(endpoint, headers=[b"Authorization: Basic amFuZTpzZWNyZXQ=",
                                          b"Cookie: __ac=abc"])
    assert endpoint.pool.calls == 1
    [environ] = endpoint.app.environs
    assert environ["PATH_INFO"] == "/Plone/@@txzserver-principal"
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["HTTP_AUTHORIZATION"] == "Basic amFuZTpzZWNyZXQ="
    assert environ["HTTP_COOKIE"] == "__ac=abc"
    assert "HTTP_UPGRADE" not in environ
    assert "HTTP_SEC_WEBSOCKET_KEY" not in environ
    client.send_json({"action": "subscribe", "path": "/Plone/news"})
    endpoint.hub.deliver(event())
    status, delivered = client.messages()  # overlapping subscriptions: the event comes once
    assert (status["type"], delivered["type"]) == ("status", "created")
    assert endpoint.pool.calls == 1  # messages and deliveries never ask Zope again


def test_anonymous_principal(monkeypatch):
    endpoint = Endpoint(monkeypatch, app=ZopeApp(principal={"userid": None, "tokens": ["Anonymous"],
                                                             "site_path": "/Plone"}))
    client, welcome = opened(endpoint)
    assert welcome["user"] is None
    endpoint.hub.deliver(event(guard=("Anonymous",)))
    endpoint.hub.deliver(event(guard=("Member",)))
    assert [m["type"] for m in client.messages()] == ["created"]


@pytest.mark.parametrize("status, code", [("401 Unauthorized", 401), ("404 Not Found", 404),
                                          ("302 Found", 500)])
def test_principal_lookup_refusal_is_the_handshake_status(monkeypatch, status, code):
    endpoint = Endpoint(monkeypatch, app=ZopeApp(status=status))
    client = endpoint.connect(b"/ws")
    assert client.status == code
    assert b"sec-websocket-accept" not in client.headers
    assert client.frames() == []
    assert client.transport.disconnecting
    assert len(endpoint.hub) == 0
    client.lose()
    assert endpoint.open_connections == 0


def test_principal_lookup_crash_is_500_and_logged(monkeypatch, caplog):
    class Broken(ZopeApp):
        def __call__(self, environ, start_response):
            raise RuntimeError("ZODB is gone")

    endpoint = Endpoint(monkeypatch, app=Broken())
    client = endpoint.connect(b"/ws")
    assert client.status == 500
    assert client.transport.disconnecting
    client.lose()
    assert endpoint.open_connections == 0


# Delivery

def test_permitted_event_is_one_text_frame_without_guard(endpoint):
    client, _ = opened(endpoint)
    assert endpoint.hub.deliver(event(uid="abc")) == 1
    [message] = client.messages()
    assert message["type"] == "created"
    assert message["path"] == "/Plone/news/item"
    assert message["uid"] == "abc"
    assert "guard" not in message


def test_event_whose_guard_misses_the_tokens_is_not_sent(endpoint):
    client, _ = opened(endpoint)
    assert endpoint.hub.deliver(event(guard=("Manager", "user:bob"))) == 0
    assert client.frames() == []


def test_user_token_in_the_guard_is_enough(endpoint):
    client, _ = opened(endpoint)
    assert endpoint.hub.deliver(event(guard=("Owner", "user:jane"))) == 1
    assert len(client.messages()) == 1


def test_event_outside_the_subscribed_paths_is_not_sent(endpoint):
    client, _ = opened(endpoint)
    assert endpoint.hub.deliver(event(path="/Other/item")) == 0
    assert endpoint.hub.deliver(event(path="/Plonex/item")) == 0
    assert client.frames() == []


def test_gap_reaches_every_connection_before_the_next_event(endpoint):
    """Lost bus events are announced to every client (any may have missed one of them),
    whatever its paths and tokens, once, before the event that revealed them; the stamp and
    guard stay on the server."""
    reader, _ = opened(endpoint)
    outsider, _ = opened(endpoint, b"/ws?path=/Plone/other")
    endpoint.hub.deliver(event(uid="one").stamped("alpha", "run-1", 1))
    assert [m["uid"] for m in reader.messages()] == ["one"]
    endpoint.hub.deliver(event(uid="four", guard=("Member", "Secret-Token")).stamped("alpha", "run-1", 4))
    gap = {"type": "gap", "instance": "alpha", "missed": 2}
    first, second = reader.messages()
    assert first == gap
    assert second["uid"] == "four"
    assert not {"guard", "seq", "epoch", "instance"} & set(second)
    assert outsider.messages() == [gap]  # not subscribed to /Plone: the gap all the same
    endpoint.hub.deliver(event(uid="five").stamped("alpha", "run-1", 5))
    assert [m["type"] for m in reader.messages()] == ["created"]  # once per gap
    assert outsider.frames() == []


def test_site_path_of_the_principal_is_the_first_subscription(monkeypatch):
    principal = {"userid": "jane", "tokens": ["Member"], "site_path": "/sites/Plone"}
    endpoint = Endpoint(monkeypatch, app=ZopeApp(principal=principal))
    client, welcome = opened(endpoint)
    assert welcome["subscriptions"] == ["/sites/Plone"]


# Client messages

def test_subscribe_and_unsubscribe_answer_status_with_the_subscriptions(endpoint):
    client, _ = opened(endpoint, path=b"/ws?path=/Plone/news")
    client.send_json({"action": "subscribe", "path": "/Plone/events/"})
    assert client.messages() == [{"type": "status", "action": "subscribe", "path": "/Plone/events",
                                  "subscriptions": ["/Plone/events", "/Plone/news"]}]
    client.send_json({"action": "unsubscribe", "path": "/Plone/news"})
    assert client.messages() == [{"type": "status", "action": "unsubscribe", "path": "/Plone/news",
                                  "subscriptions": ["/Plone/events"]}]
    endpoint.hub.deliver(event(path="/Plone/news/item"))
    endpoint.hub.deliver(event(path="/Plone/events/party"))
    assert [m["path"] for m in client.messages()] == ["/Plone/events/party"]


def test_subscribing_twice_keeps_one_subscription(endpoint):
    client, _ = opened(endpoint)
    client.send_json({"action": "subscribe", "path": "/Plone"})
    [status] = client.messages()
    assert status["subscriptions"] == ["/Plone"]
    endpoint.hub.deliver(event())
    assert len(client.messages()) == 1


def test_unsubscribing_everything_stops_delivery(endpoint):
    client, _ = opened(endpoint)
    client.send_json({"action": "unsubscribe", "path": "/Plone"})
    assert client.messages()[0]["subscriptions"] == []
    assert endpoint.hub.deliver(event()) == 0
    assert client.frames() == []


@pytest.mark.parametrize("frame, fragment", [
    (client_frame("not json"), "not JSON"),
    (client_frame("{"), "not JSON"),
    (client_json(["subscribe", "/Plone"]), "JSON object"),
    (client_json("subscribe"), "JSON object"),
    (client_json({"action": "delete", "path": "/Plone"}), "unknown action 'delete'"),
    (client_json({"path": "/Plone"}), "unknown action None"),
    (client_json({"action": "subscribe", "path": "Plone/news"}), "absolute path"),
    (client_json({"action": "subscribe", "path": "/Plone/../secret"}), ". or .."),
    (client_json({"action": "subscribe"}), "absolute path"),
    (client_json({"action": "subscribe", "path": 42}), "absolute path"),
    (client_frame(b'{"action": "subscribe"}', opcode=BINARY), "binary messages are not supported"),
])
def test_bad_messages_are_answered_with_an_error_and_the_connection_stays(endpoint, frame, fragment):
    client, _ = opened(endpoint)
    client.send(frame)
    [error] = client.messages()
    assert error["type"] == "error"
    assert fragment in error["message"]
    assert not client.transport.disconnecting
    client.send_json({"action": "subscribe", "path": "/Plone/news"})
    assert client.messages()[0]["type"] == "status"
    assert endpoint.hub.deliver(event()) == 1


def test_subscriptions_are_limited(endpoint):
    client, _ = opened(endpoint)
    for i in range(MAX_SUBSCRIPTIONS - 1):
        client.send_json({"action": "subscribe", "path": f"/Plone/f{i}"})
    assert len(client.messages()[-1]["subscriptions"]) == MAX_SUBSCRIPTIONS
    client.send_json({"action": "subscribe", "path": "/Plone/one-more"})
    [error] = client.messages()
    assert error["type"] == "error"
    assert str(MAX_SUBSCRIPTIONS) in error["message"]
    client.send_json({"action": "subscribe", "path": "/Plone/f0"})  # already there: fine
    assert client.messages()[0]["type"] == "status"


def test_message_at_the_limit_is_read(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(max_message_size=100))
    client, _ = opened(endpoint)
    message = json.dumps({"action": "subscribe", "path": "/Plone/" + "x" * 50})
    message += " " * (100 - len(message))
    assert len(message) == 100
    client.send(client_frame(message))
    assert client.messages()[0]["type"] == "status"


def test_message_above_max_message_size_closes_with_1009(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(max_message_size=100))
    client, _ = opened(endpoint)
    client.send(client_frame("x" * 101))
    [(opcode, payload)] = client.frames()
    assert opcode == CLOSE
    assert close_code(payload) == 1009
    endpoint.hub.deliver(event())
    assert client.frames() == []  # closing: no more events
    client.send(client_close(1009))  # the client's answer ends the closing handshake
    assert client.transport.disconnecting
    client.lose()
    assert endpoint.open_connections == 0
    assert len(endpoint.hub) == 0


def test_fragmented_message_above_the_limit_closes_with_1009(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(max_message_size=100))
    client, _ = opened(endpoint)
    client.send(client_frame("x" * 60, fin=False))
    client.send(client_frame("x" * 60, opcode=0))
    [(opcode, payload)] = client.frames()
    assert (opcode, close_code(payload)) == (CLOSE, 1009)


def test_max_message_size_does_not_limit_what_the_server_sends(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(max_message_size=100))
    client, _ = opened(endpoint)
    endpoint.hub.deliver(event(message="m" * 500))
    client.send_json({"action": "subscribe", "path": "/Plone/" + "p" * 40})
    client.send_json({"action": "subscribe", "path": "/Plone/" + "q" * 40})  # status > 100 bytes
    delivered, _, status = client.messages()
    assert delivered["message"] == "m" * 500
    assert len(status["subscriptions"]) == 3
    assert not client.transport.disconnecting
    client.send(client_frame("x" * 101))  # while receiving stays limited
    [(opcode, payload)] = client.frames()
    assert (opcode, close_code(payload)) == (CLOSE, 1009)


# Keepalive

def test_pings_are_sent_every_ping_interval(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(ping_interval=30, ping_timeout=20))
    client, _ = opened(endpoint)
    endpoint.reactor.advance(29)
    assert client.frames() == []
    endpoint.reactor.advance(1.5)
    assert [opcode for opcode, _ in client.frames()] == [PING]


# The end of a connection

def test_client_close_is_answered_and_the_hub_is_left_when_the_socket_closes(endpoint):
    client, _ = opened(endpoint)
    assert len(endpoint.hub) == 1
    client.send(client_close(1000))
    [(opcode, payload)] = client.frames()
    assert (opcode, close_code(payload)) == (CLOSE, 1000)
    assert client.transport.disconnecting  # the server closes the TCP connection first
    client.lose()
    assert len(endpoint.hub) == 0
    assert endpoint.open_connections == 0


@pytest.mark.parametrize("closing", ["client", "server"])
def test_delivery_skips_a_closing_connection_and_reaches_the_others(endpoint, closing):
    """Between the close frame and the socket's end the connection is still in the hub."""
    first, _ = opened(endpoint)
    second, _ = opened(endpoint)
    if closing == "client":
        first.send(client_close(1000))
    else:
        first.protocol.sendClose(1000)
    first.frames()
    endpoint.hub.deliver(event())  # must not raise (Autobahn refuses to send while closing)
    assert first.frames() == []
    assert [m["type"] for m in second.messages()] == ["created"]


def test_connection_leaves_the_http_count_at_the_hand_off(endpoint):
    client, _ = opened(endpoint)
    assert endpoint.open_connections == 0  # WebSockets leave the HTTP count at the hand-off
    assert len(endpoint.hub) == 1
    client.lose()
    assert endpoint.open_connections == 0
    assert len(endpoint.hub) == 0
    assert endpoint.hub.deliver(event()) == 0


def test_slots_of_several_connections(endpoint):
    clients = [opened(endpoint)[0] for _ in range(3)]
    assert endpoint.open_connections == 0
    assert len(endpoint.hub) == 3
    assert endpoint.hub.deliver(event()) == 3
    clients[1].lose()
    assert len(endpoint.hub) == 2
    assert endpoint.hub.deliver(event()) == 2
    for client in (clients[0], clients[2]):
        client.lose()
    assert endpoint.open_connections == 0


def test_close_all_sends_going_away(endpoint):
    clients = [opened(endpoint)[0] for _ in range(2)]
    endpoint.service.close_all()
    for client in clients:
        [(opcode, payload)] = client.frames()
        assert (opcode, close_code(payload)) == (CLOSE, 1001)


# Clients that stop reading

def big_event(size=10_000):
    return event(message="m" * size)


def test_a_client_that_stops_reading_is_cut_off_at_the_byte_limit(endpoint):
    from txzserver.websocket.protocol import MAX_BACKLOG_BYTES
    client, _ = opened(endpoint)
    reader = client.protocol.reader
    assert client.transport.producer is reader  # the transport tells us when it is full
    reader.pauseProducing()  # what the transport does when the client stops reading
    delivered = 0
    while reader.backlog_bytes + 10_100 < MAX_BACKLOG_BYTES:
        endpoint.hub.deliver(big_event())
        delivered += 1
    assert not client.transport.disconnecting
    endpoint.hub.deliver(big_event())
    endpoint.hub.deliver(big_event())
    assert client.transport.disconnecting or client.transport.disconnected
    assert delivered > 90  # about 1 MiB of 10 kB events


def test_a_client_stalled_too_long_is_cut_off_at_the_next_event(endpoint):
    from txzserver.websocket.protocol import MAX_STALL_SECONDS
    client, _ = opened(endpoint)
    reader = client.protocol.reader
    reader.pauseProducing()
    endpoint.hub.deliver(event())
    endpoint.reactor.advance(MAX_STALL_SECONDS - 1)
    endpoint.hub.deliver(event())
    assert not client.transport.disconnecting
    endpoint.reactor.advance(2)
    endpoint.hub.deliver(event())
    assert client.transport.disconnecting or client.transport.disconnected


def test_a_burst_to_a_client_that_reads_again_is_kept(endpoint):
    """A bulk commit: a thousand small events in one turn, then the transport drains."""
    client, _ = opened(endpoint)
    reader = client.protocol.reader
    for _ in range(3):
        reader.pauseProducing()
        for _ in range(1000):
            endpoint.hub.deliver(event())
        reader.resumeProducing()  # the transport drained: the count starts again
        assert reader.backlog == 0 and reader.backlog_bytes == 0
    assert not client.transport.disconnecting
    assert len(client.messages()) == 3000
