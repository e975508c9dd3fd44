"""txzserver.server.negotiate: protocol choice (HTTP/1.1, h2c prior knowledge, ALPN h2, and
Upgrade: h2c)."""

import h2.events
import pytest

from txzserver.server.http2 import H2Channel
from txzserver.server.negotiate import H2_PREFACE

from .helpers import (
    HTTP1_CHANNELS, ALPNTransport, Hanging, H2Client, connect, feed, make_site, parse_http1,
    responses, spin,
)

pytestmark = pytest.mark.usefixtures("each_http1_parser")

GET = b"GET /hello HTTP/1.1\r\nHost: example.org\r\n\r\n"


# Protocol choice

@pytest.mark.parametrize("h2c", [False, True])
def test_http11_request_is_served_byte_by_byte(h2c):
    site = make_site(h2c=h2c)
    protocol, transport = connect(site)
    feed(protocol, GET, bytewise=True)
    code, headers, body = parse_http1(transport.value())
    assert code == 200
    assert body == b"GET /hello "
    assert isinstance(protocol.channel, HTTP1_CHANNELS)
    assert not transport.disconnecting


def test_http11_request_starting_like_the_preface_is_http11():
    """A "P..." method is buffered while it could be the preface, then served as HTTP/1.1."""
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    feed(protocol, b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", bytewise=True)
    code, _, body = parse_http1(transport.value())
    assert code == 200
    assert body == b"POST /p abc"


def test_two_http11_requests_on_one_connection():
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    feed(protocol, GET + GET)
    assert transport.value().count(b"HTTP/1.1 200 OK") == 2


def test_h2c_preface_byte_by_byte_switches_to_http2():
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    data = client.conn.data_to_send()
    assert data.startswith(H2_PREFACE)
    # One byte at a time: nothing is decided before the preface is complete.
    for i in range(len(H2_PREFACE) - 1):
        protocol.dataReceived(data[i:i + 1])
        assert isinstance(protocol.channel, HTTP1_CHANNELS)
    assert transport.value() == b""
    feed(protocol, data[len(H2_PREFACE) - 1:], bytewise=True)
    spin(site.reactor)
    assert isinstance(protocol.channel, H2Channel)

    events = client.events()
    assert any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events)

    client.request(1, path="/hello")
    client.flush()
    answer = responses(client.events())[1]
    assert answer["status"] == 200
    assert answer["body"] == b"GET /hello "
    assert answer["ended"]
    assert not transport.disconnecting


def test_h2c_post_with_body():
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.request(1, method="POST", path="/p", body=b"payload",
                   headers=[("content-length", "7")])
    client.flush()
    answer = responses(client.events())[1]
    assert (answer["status"], answer["body"]) == (200, b"POST /p payload")


def test_preface_without_h2c_is_a_bad_http11_request():
    site = make_site(h2c=False)
    protocol, transport = connect(site)
    feed(protocol, H2_PREFACE, bytewise=True)
    assert isinstance(protocol.channel, HTTP1_CHANNELS)
    code, headers, _ = parse_http1(transport.value())
    assert code == 400
    assert headers[b"connection"] == b"close"
    assert transport.disconnecting
    assert transport.value().count(b"HTTP/1.1") == 1


def test_alpn_h2_switches_without_preface_check():
    site = make_site(h2c=False)
    protocol, transport = connect(site, ALPNTransport(b"h2"))
    client = H2Client(protocol, transport, site.reactor)
    client.request(1, path="/tls")
    client.flush(bytewise=True)
    assert isinstance(protocol.channel, H2Channel)
    answer = responses(client.events())[1]
    assert (answer["status"], answer["body"]) == (200, b"GET /tls ")


def test_alpn_http11_stays_http11():
    site = make_site(h2c=False)
    protocol, transport = connect(site, ALPNTransport(b"http/1.1"))
    feed(protocol, GET)
    assert isinstance(protocol.channel, HTTP1_CHANNELS)
    assert parse_http1(transport.value())[0] == 200


def test_h2_connection_uses_the_site_reactor():
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    feed(protocol, H2_PREFACE)
    assert protocol.channel._reactor is site.reactor


def test_connection_lost_reaches_the_channel():
    site = make_site(h2c=True)
    resource = Hanging()
    site.resource = resource
    protocol, transport = connect(site)
    feed(protocol, GET)
    lost = []
    resource.pending[0].notifyFinish().addErrback(lost.append)
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure
    protocol.connectionLost(Failure(ConnectionDone()))
    assert len(lost) == 1



def test_upgrade_h2c_needs_the_http2_settings_header():
    """Without HTTP2-Settings (RFC 7540 3.2.1) the Upgrade is ignored and HTTP/1.1 answers."""
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    feed(protocol, b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    code, _, body = parse_http1(transport.value())
    assert (code, body) == (200, b"GET /u ")


# Upgrade: h2c (RFC 7540 3.2)

def _upgrade_client(site, request_extra=b"", preface_in_same_packet=False, bytewise=False):
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings = client.conn.initiate_upgrade_connection()
    request = (b"GET /hello HTTP/1.1\r\nHost: example.org\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n" + request_extra + b"\r\n")
    if preface_in_same_packet:
        request += client.conn.data_to_send()
    feed(protocol, request, bytewise=bytewise)
    spin(site.reactor)
    return protocol, transport, client


def test_upgrade_h2c_answers_101_then_the_request_on_stream_1():
    site = make_site(h2c=True)
    protocol, transport, client = _upgrade_client(site, bytewise=True)
    head, _, rest = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
    assert b"Upgrade: h2c" in head
    assert isinstance(protocol.channel, H2Channel)
    transport.clear()
    transport.write(rest)
    client.flush()  # the client's preface and SETTINGS
    answer = responses(client.events())[1]
    assert answer["status"] == 200 and answer["body"] == b"GET /hello " and answer["ended"]
    client.request(3, path="/again")  # the connection goes on as HTTP/2
    client.flush()
    assert responses(client.events())[3]["body"] == b"GET /again "


def test_upgrade_h2c_with_the_preface_in_the_same_packet():
    site = make_site(h2c=True)
    protocol, transport, client = _upgrade_client(site, preface_in_same_packet=True)
    head, _, rest = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    transport.clear()
    transport.write(rest)
    assert responses(client.events())[1]["body"] == b"GET /hello "


def test_upgrade_h2c_is_ignored_when_h2c_is_off_or_the_request_has_a_body():
    for site, extra in ((make_site(h2c=False), b""),):
        protocol, transport, _ = _upgrade_client(site, request_extra=extra)
        assert transport.value().startswith(b"HTTP/1.1 200"), transport.value()[:40]
        assert isinstance(protocol.channel, HTTP1_CHANNELS)
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    feed(protocol, b"POST /p HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                   b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n\r\nabc")
    spin(site.reactor)
    assert transport.value().startswith(b"HTTP/1.1 200")
    assert isinstance(protocol.channel, HTTP1_CHANNELS)
