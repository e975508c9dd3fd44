"""txzserver.server.channel: protocol choice (HTTP/1.1, h2c prior knowledge, ALPN h2), the
HTTP/1.1 header limits, and the HTTP/2 idle timeout that waits for open streams."""

import h2.events
import pytest
from twisted.internet.testing import StringTransport
from twisted.web import server
from twisted.web.resource import Resource

from txzserver.server.channel import (
    H2_PREFACE, LimitedHTTPChannel, NegotiatingChannel, ZopeH2Connection,
)

from .helpers import (
    HOST, PEER, Echo, H2Client, connect, feed, make_site, parse_http1, responses, spin,
)

GET = b"GET /hello HTTP/1.1\r\nHost: example.org\r\n\r\n"


class ALPNTransport(StringTransport):
    """A TLS-like transport whose ALPN negotiation picked ``negotiatedProtocol``."""

    def __init__(self, protocol):
        super().__init__(hostAddress=HOST, peerAddress=PEER)
        self.negotiatedProtocol = protocol


class Hanging(Resource):
    """Never answers until the test calls ``finish_all``: a request being published."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.pending = []

    def render(self, request):
        self.pending.append(request)
        return server.NOT_DONE_YET

    def finish_all(self):
        for request in self.pending:
            request.write(b"done")
            request.finish()
        self.pending = []


# Protocol choice

@pytest.mark.parametrize("h2c", [False, True])
def test_http11_request_is_served_byte_by_byte(h2c):
    site = make_site(h2c=h2c)
    protocol, transport = connect(site)
    feed(protocol, GET, bytewise=True)
    code, headers, body = parse_http1(transport.value())
    assert code == 200
    assert body == b"GET /hello "
    assert isinstance(protocol.channel, LimitedHTTPChannel)
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
        assert isinstance(protocol.channel, LimitedHTTPChannel)
    assert transport.value() == b""
    feed(protocol, data[len(H2_PREFACE) - 1:], bytewise=True)
    spin(site.reactor)
    assert isinstance(protocol.channel, ZopeH2Connection)

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
    assert isinstance(protocol.channel, LimitedHTTPChannel)
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
    assert isinstance(protocol.channel, ZopeH2Connection)
    answer = responses(client.events())[1]
    assert (answer["status"], answer["body"]) == (200, b"GET /tls ")


def test_alpn_http11_stays_http11():
    site = make_site(h2c=False)
    protocol, transport = connect(site, ALPNTransport(b"http/1.1"))
    feed(protocol, GET)
    assert isinstance(protocol.channel, LimitedHTTPChannel)
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


# HTTP/1.1 limits

def test_header_line_too_long_gives_431_byte_by_byte():
    site = make_site(max_header_size=1024)
    protocol, transport = connect(site)
    feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n", bytewise=True)
    code, headers, body = parse_http1(transport.value())
    assert code == 431
    assert b"max-header-size" in body
    assert transport.disconnecting
    assert transport.value().count(b"HTTP/1.1 ") == 1
    assert site.resource.requests == []


def test_many_header_lines_over_total_size_give_431():
    site = make_site(max_header_size=1024)
    protocol, transport = connect(site)
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 50) for i in range(40))
    feed(protocol, head + b"\r\n", bytewise=True)
    code, _, body = parse_http1(transport.value())
    assert code == 431
    assert b"exceed 1024 bytes" in body
    assert transport.value().count(b"HTTP/1.1 ") == 1
    assert site.resource.requests == []


def test_header_size_is_counted_per_request():
    """Two requests whose heads together exceed the limit are both served."""
    site = make_site(max_header_size=1024)
    protocol, transport = connect(site)
    one = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 600 + b"\r\n\r\n"
    feed(protocol, one + one)
    assert transport.value().count(b"HTTP/1.1 200 OK") == 2


def test_too_many_headers_give_431():
    site = make_site(max_headers=3)
    protocol, transport = connect(site)
    feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", bytewise=True)
    code, _, body = parse_http1(transport.value())
    assert code == 431
    assert b"max-headers" in body
    assert transport.disconnecting
    assert site.resource.requests == []


def test_headers_at_the_limit_are_accepted():
    site = make_site(max_headers=3)
    protocol, transport = connect(site)
    feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n")
    assert parse_http1(transport.value())[0] == 200


@pytest.mark.parametrize("line", [b"GARBAGE", b"GET / HTTP/1.1 extra", b"GET / HTTP/9.9",
                                  b"G\x00T / HTTP/1.1"])
def test_malformed_request_line_gives_400_with_reason(line):
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, line + b"\r\nHost: x\r\n\r\n", bytewise=True)
    code, headers, body = parse_http1(transport.value())
    assert code == 400
    assert body == b"malformed request\n"
    assert int(headers[b"content-length"]) == len(body)
    assert transport.disconnecting
    assert transport.value().count(b"HTTP/1.1 ") == 1


def test_negotiating_channel_defaults_pass_to_the_http11_channel():
    channel = NegotiatingChannel()
    channel.makeConnection(StringTransport())
    assert channel.channel.maxHeaders == NegotiatingChannel.maxHeaders
    assert channel.channel.totalHeadersSize == NegotiatingChannel.totalHeadersSize
    assert channel.channel.MAX_LENGTH == NegotiatingChannel.totalHeadersSize


# HTTP/2 idle timeout

def _h2_connection(resource, timeout=10):
    site = make_site(resource, h2c=True, idle_timeout=timeout)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    return site, protocol, transport, client


def test_h2_connection_without_streams_times_out():
    site, protocol, transport, client = _h2_connection(Echo())
    site.reactor.advance(9)
    assert not transport.disconnecting
    site.reactor.advance(2)
    assert transport.disconnecting
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in client.events())


def test_h2_connection_with_open_stream_is_not_timed_out():
    resource = Hanging()
    site, protocol, transport, client = _h2_connection(resource)
    client.request(1)
    client.flush()
    assert len(resource.pending) == 1
    for _ in range(5):
        site.reactor.advance(11)
        assert not transport.disconnecting
    assert protocol.channel.streams

    resource.finish_all()
    spin(site.reactor)
    answer = responses(client.events())[1]
    assert (answer["status"], answer["body"], answer["ended"]) == (200, b"done", True)
    assert not protocol.channel.streams
    site.reactor.advance(11)
    assert transport.disconnecting


def test_h2_idle_timer_restarts_after_the_last_stream():
    """After a long request the connection gets a full idle period, not an immediate close."""
    resource = Hanging()
    site, protocol, transport, client = _h2_connection(resource)
    client.request(1)
    client.flush()
    site.reactor.advance(25)
    resource.finish_all()
    spin(site.reactor)
    client.events()
    site.reactor.advance(5)
    assert not transport.disconnecting


def test_upgrade_h2c_needs_the_http2_settings_header():
    """Without HTTP2-Settings (RFC 7540 3.2.1) the Upgrade is ignored and HTTP/1.1 answers."""
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    feed(protocol, b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    code, _, body = parse_http1(transport.value())
    assert (code, body) == (200, b"GET /u ")


# Interfaces

def test_interfaces():
    from twisted.internet.interfaces import IProtocol, IPushProducer
    from zope.interface.verify import verifyObject
    from .helpers import ThreadsReactor
    assert verifyObject(IProtocol, NegotiatingChannel())
    assert verifyObject(IProtocol, LimitedHTTPChannel())
    h2 = ZopeH2Connection(reactor=ThreadsReactor())
    assert verifyObject(IProtocol, h2)
    assert verifyObject(IPushProducer, h2)


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
    assert isinstance(protocol.channel, ZopeH2Connection)
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
        assert isinstance(protocol.channel, LimitedHTTPChannel)
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    feed(protocol, b"POST /p HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                   b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n\r\nabc")
    spin(site.reactor)
    assert transport.value().startswith(b"HTTP/1.1 200")
    assert isinstance(protocol.channel, LimitedHTTPChannel)
