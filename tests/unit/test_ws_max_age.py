"""max-connection-age: a WebSocket connection is closed with 4001 after at most that long
(up to a tenth earlier, at random), so that its client reconnects and authenticates again.
The reactor is a MemoryReactorClock (wsframes.Endpoint)."""

import pytest

from tests.robustness import ROWS
from txzserver.config.datatypes import WebSocketSettings
from txzserver.websocket.protocol import REAUTHENTICATE

from .wsframes import CLOSE, Endpoint, client_close, close_code

AGE = ROWS["ws_max_age"].figures


def opened(endpoint):
    client = endpoint.connect(b"/ws")
    assert client.status == 101, client.status_line
    client.messages()  # the welcome
    return client


def test_the_default_is_one_hour():
    assert WebSocketSettings().max_connection_age == AGE["default_s"]


def test_a_connection_is_closed_with_4001_at_its_age(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(max_connection_age=AGE["age_s"],
                                                                 ping_interval=0))
    client = opened(endpoint)
    endpoint.reactor.advance(AGE["age_s"] * 0.9 - 0.01)  # never earlier than 9/10 of the age
    assert client.frames() == []
    endpoint.reactor.advance(0.02 + AGE["age_s"] * 0.1)  # and no later than the age
    [(opcode, payload)] = client.frames()
    assert (opcode, close_code(payload)) == (CLOSE, REAUTHENTICATE)
    assert REAUTHENTICATE == AGE["code"]
    assert b"(max-connection-age): reconnect to authenticate again" in payload
    client.send(client_close(REAUTHENTICATE))
    assert client.transport.disconnecting
    client.lose()
    assert len(endpoint.hub) == 0
    assert endpoint.reactor.getDelayedCalls() == []


def test_connections_opened_together_close_at_different_times(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(max_connection_age=100,
                                                                 ping_interval=0))
    clients = [opened(endpoint) for _ in range(20)]
    closed_at = {}
    for step in range(1, 101):
        endpoint.reactor.advance(1)
        for number, client in enumerate(clients):
            if number not in closed_at and client.frames():
                closed_at[number] = step
    assert sorted(closed_at) == list(range(20))
    assert min(closed_at.values()) >= 90 and len(set(closed_at.values())) > 1


def test_a_connection_that_ends_first_leaves_no_timer(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(max_connection_age=60,
                                                                 ping_interval=0))
    client = opened(endpoint)
    client.lose()
    assert endpoint.reactor.getDelayedCalls() == []


def test_zero_means_no_limit(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(max_connection_age=0,
                                                                 ping_interval=0))
    client = opened(endpoint)
    endpoint.reactor.advance(10 * 24 * 3600)
    assert client.frames() == []
    assert not client.transport.disconnecting


def test_a_negative_age_is_refused():
    with pytest.raises(ValueError, match="max-connection-age"):
        WebSocketSettings(max_connection_age=-1)
