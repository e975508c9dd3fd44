"""WebSocket over HTTP/2 (RFC 8441) against a real `txzserver serve` on a real Plone site: the
h2 library as the client, over TLS (ALPN h2, the test CA) and over h2c, several WebSockets and
page requests on one connection; content made through Zope reaches the stream."""

import time
from pathlib import Path

import pytest

from tests.support.h2ws import H2WebSocketClient
from tests.support.restapi import add_users, api
from tests.support.wsclient import basic

PASSWORD = "secret-Passw0rd"


@pytest.fixture(scope="module")
def server(servers):
    server = servers.start("wsh2", threads=2, https=True,
                           extra="<websocket>\n  path /ws\n</websocket>")
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
    return (Path(server.conf).parent.parent / "log" / "access.log").read_text(errors="replace")


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
