"""WebSocket endpoint against bad input, foreign origins, bad credentials and its limits."""

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.instance import ADMIN
from tests.support.wsclient import basic

WEBSOCKET = """<websocket>
  path /ws
  max-message-size 4KB
  max-connections 3
  allowed-origin https://intranet.example.org
</websocket>"""


@pytest.fixture(scope="module")
def ws_server(servers):
    return servers.start("ws-bad", threads=2, extra=WEBSOCKET)


def url(server, path="/Plone/ws"):
    return server.url(path).replace("http://", "ws://")


def welcome(ws):
    message = json.loads(ws.recv(timeout=10))
    assert message["type"] == "welcome"
    return message


def test_malformed_messages_get_errors_and_the_connection_survives(ws_server):
    with connect(url(ws_server), additional_headers=basic(*ADMIN)) as ws:
        welcome(ws)
        for raw, expected in (("not json", "not JSON"), ("[1, 2]", "JSON object"),
                              ('{"action": "dance"}', "unknown action"),
                              ('{"action": "subscribe", "path": "relative"}', "absolute"),
                              ('{"action": "subscribe", "path": "/Plone/../x"}', "..")):
            ws.send(raw)
            reply = json.loads(ws.recv(timeout=10))
            assert reply["type"] == "error" and expected in reply["message"], (raw, reply)
        ws.send(b"\x00binary")
        assert "binary" in json.loads(ws.recv(timeout=10))["message"]
        ws.send(json.dumps({"action": "subscribe", "path": "/Plone/news"}))
        reply = json.loads(ws.recv(timeout=10))
        assert reply == {"type": "status", "action": "subscribe", "path": "/Plone/news",
                         "subscriptions": ["/Plone", "/Plone/news"]}


def test_huge_frame_closes_with_1009(ws_server):
    with connect(url(ws_server), additional_headers=basic(*ADMIN), max_size=None) as ws:
        welcome(ws)
        ws.send("x" * 10_000)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_foreign_origin_is_refused(ws_server):
    with pytest.raises(InvalidStatus) as refused:
        connect(url(ws_server), origin="https://evil.example.com").close()
    assert refused.value.response.status_code == 403


def test_own_and_allowed_origins_are_accepted(ws_server):
    own = f"http://127.0.0.1:{ws_server.port}"
    for origin in (own, "https://intranet.example.org"):
        with connect(url(ws_server), origin=origin) as ws:
            assert welcome(ws)["user"] is None


def test_bad_credentials_connect_as_anonymous(ws_server):
    """Documented: PAS treats wrong passwords and expired tokens as no credentials."""
    expired = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZG1pbiIsImV4cCI6MTAwMDAwMDAwMH0."
               "c2lnbmF0dXJlLWRvZXMtbm90LW1hdHRlcg")
    for headers in (basic(ADMIN[0], "wrong"), {"Authorization": f"Bearer {expired}"}):
        with connect(url(ws_server), additional_headers=headers) as ws:
            assert welcome(ws)["user"] is None
    with connect(url(ws_server), additional_headers=basic(*ADMIN)) as ws:
        assert welcome(ws)["user"] == ADMIN[0]


def test_jwt_and_cookie_authentication(ws_server):
    token = httpx.post(ws_server.url("/Plone/@login"), json={"login": ADMIN[0], "password": ADMIN[1]},
                       headers={"Accept": "application/json"}).json()["token"]
    with connect(url(ws_server), additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert welcome(ws)["user"] == ADMIN[0]
    login = httpx.post(ws_server.url("/Plone/login"), follow_redirects=False,
                       data={"__ac_name": ADMIN[0], "__ac_password": ADMIN[1], "buttons.login": "Log in"})
    session = login.cookies.get("__ac")
    assert session, f"Classic UI login gave no __ac cookie ({login.status_code})"
    with connect(url(ws_server), additional_headers={"Cookie": f'__ac="{session}"'}) as ws:
        assert welcome(ws)["user"] == ADMIN[0]
    # Volto's session: its JWT in the auth_token cookie, which a browser sends with the handshake
    with connect(url(ws_server), additional_headers={"Cookie": f"auth_token={token}"}) as ws:
        assert welcome(ws)["user"] == ADMIN[0]


def test_plain_get_of_the_endpoint_is_426(ws_server):
    response = httpx.get(ws_server.url("/Plone/ws"))
    assert response.status_code == 426
    assert response.headers["upgrade"].lower() == "websocket"


def test_unknown_site_is_refused(ws_server):
    with pytest.raises(InvalidStatus) as refused:
        connect(url(ws_server, "/Nosuchsite/ws")).close()
    assert refused.value.response.status_code == 404


def test_connection_limit(ws_server):
    from contextlib import ExitStack
    with ExitStack() as stack:
        held = [stack.enter_context(connect(url(ws_server))) for _ in range(3)]
        for ws in held:
            welcome(ws)
        with pytest.raises(InvalidStatus) as refused:
            connect(url(ws_server)).close()
        assert refused.value.response.status_code == 503
        held[0].close()
        with connect(url(ws_server)) as ws:  # a slot is free again
            welcome(ws)
