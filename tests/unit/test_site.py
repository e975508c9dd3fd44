"""txzserver.server.site: connection limit shared by all listeners, settings passed on."""

import logging

import h2.errors
import h2.events
from twisted.internet.error import ConnectionDone
from twisted.logger import formatEvent
from twisted.python.failure import Failure

from txzserver.server.connection import ConnectionCounter
from txzserver.server.negotiate import H2_PREFACE, NegotiatingProtocol

from .helpers import (
    PEER, H2Client, Hanging, connect, feed, make_settings, make_site, parse_http1, spin,
)

#: The start of a request head: not idle, but the first to go when nothing is idle.
PARTIAL_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
#: A request whose body is arriving: busy, never closed for a newcomer.
PARTIAL_BODY = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"


def lost(protocol):
    protocol.connectionLost(Failure(ConnectionDone()))


# max-connections: 503 only when no connection is idle

def test_second_connection_over_the_limit_gets_503_when_none_is_idle():
    site = make_site(max_connections=1)
    first, first_transport = connect(site)
    assert isinstance(first, NegotiatingProtocol)
    assert site.counter.open == 1
    feed(first, PARTIAL_BODY)  # reading a request body: busy
    assert site.counter.idle == 0

    second, transport = connect(site)
    assert not isinstance(second, NegotiatingProtocol)
    code, headers, body = parse_http1(transport.value())
    assert code == 503
    assert b"max-connections" in body
    assert headers[b"connection"] == b"close"
    assert transport.disconnecting
    assert site.counter.open == 1

    # The first connection still works; once it is gone a new one is accepted.
    feed(first, b"defghij")
    assert parse_http1(first_transport.value())[0] == 200
    lost(first)
    assert site.counter.open == 0
    third, _ = connect(site)
    assert isinstance(third, NegotiatingProtocol)


def test_listeners_share_one_counter():
    settings = make_settings(max_connections=2)
    counter = ConnectionCounter(settings.max_connections)
    one = make_site(settings=settings, counter=counter)
    two = make_site(settings=settings, counter=counter, h2c=True)
    feed(connect(one)[0], PARTIAL_BODY)
    feed(connect(two)[0], PARTIAL_BODY)
    _, transport = connect(one)
    assert parse_http1(transport.value())[0] == 503
    assert counter.open == 2


def test_settings_reach_the_channel(each_http1_parser):
    site = make_site(h2c=True, max_headers=7, max_header_size=2048, idle_timeout=12.5)
    protocol, _ = connect(site)
    assert protocol.h2c is True
    assert protocol.settings is site.settings  # handed over, not copied
    channel = protocol.channel
    assert channel.settings is site.settings
    if each_http1_parser == "twisted":  # the attributes Twisted's HTTPChannel reads
        assert (channel.maxHeaders, channel.totalHeadersSize, channel.timeOut) == (7, 2048, 12.5)
    assert protocol.site is site


def test_http11_idle_timeout_uses_the_site_reactor():
    site = make_site(idle_timeout=5)
    protocol, transport = connect(site)
    site.reactor.advance(4)
    assert not transport.disconnecting
    site.reactor.advance(2)
    assert transport.disconnecting


def test_finished_requests_are_access_logged(caplog):
    site = make_site(access_log_format="common")
    protocol, transport = connect(site)
    with caplog.at_level(logging.INFO, logger="access"):
        feed(protocol, b"GET /logged?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        site.reactor.advance(1)  # lines are written in batches (AccessLog)
    lines = [r.getMessage() for r in caplog.records if r.name == "access"]
    assert len(lines) == 1
    assert lines[0].startswith(PEER.host + " - - [")
    assert '"GET /logged?x=1 HTTP/1.1" 200 ' in lines[0]


def test_interfaces():
    from twisted.internet.interfaces import IProtocol, IProtocolFactory
    from zope.interface.verify import verifyObject
    site = make_site(max_connections=1)
    assert verifyObject(IProtocolFactory, site)
    assert verifyObject(IProtocol, site.buildProtocol(PEER))
    feed(connect(site)[0], PARTIAL_BODY)
    protocol = site.buildProtocol(PEER)
    assert not isinstance(protocol, NegotiatingProtocol)
    assert verifyObject(IProtocol, protocol)  # the 503 protocol


# max-connections: the longest idle connection makes room

def test_longest_idle_connection_is_closed_for_a_newcomer(logged):
    site = make_site(max_connections=2)
    first, first_transport = connect(site)
    second, second_transport = connect(site)
    feed(first, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # first was active last
    assert parse_http1(first_transport.value())[0] == 200
    assert site.counter.idle == 2

    third, third_transport = connect(site)
    assert isinstance(third, NegotiatingProtocol)
    assert second_transport.disconnecting and second_transport.value() == b""
    assert not first_transport.disconnecting
    assert site.counter.open == 2
    feed(third, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parse_http1(third_transport.value())[0] == 200
    lines = [formatEvent(e) for e in logged]
    assert any("closing idle connection from 192.0.2.7:54321 to make room" in line
               and "max-connections" in line for line in lines), lines

    # The evicted connection's late connectionLost does not free its slot a second time.
    lost(second)
    assert site.counter.open == 2
    lost(first)
    assert site.counter.open == 1
    assert site.counter.idle == 1  # third, idle after its response


def test_connections_answering_or_reading_a_body_are_not_closed_a_trickling_head_is():
    resource = Hanging()
    site = make_site(resource, max_connections=3)
    answering, answering_transport = connect(site)
    feed(answering, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # published, no answer yet
    reading, reading_transport = connect(site)
    feed(reading, PARTIAL_HEAD)
    body, body_transport = connect(site)
    feed(body, PARTIAL_BODY)
    assert (site.counter.idle, site.counter.reading_heads) == (0, 1)

    # Nothing idle: the head still arriving makes room (408), the others are kept.
    newcomer, _ = connect(site)
    assert isinstance(newcomer, NegotiatingProtocol)
    code, _, reason = parse_http1(reading_transport.value())
    assert code == 408 and b"max-connections" in reason
    assert reading_transport.disconnecting
    assert not any(t.disconnecting for t in (answering_transport, body_transport))

    feed(newcomer, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")  # busy too
    _, refused = connect(site)
    assert parse_http1(refused.value())[0] == 503

    resource.finish_all()  # answered: that connection is idle now, the next newcomer gets it
    assert site.counter.idle == 1
    third, _ = connect(site)
    assert isinstance(third, NegotiatingProtocol)
    assert answering_transport.disconnecting
    assert answering_transport.value().count(b"HTTP/1.1 200") == 1  # its response was complete


def test_pipelined_request_keeps_the_connection_busy():
    resource = Hanging()
    site = make_site(resource, max_connections=1)
    protocol, transport = connect(site)
    feed(protocol, b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
    one = resource.pending.pop()
    one.write(b"one")
    one.finish()  # /one answered, /two is published now
    assert [r.path for r in resource.pending] == [b"/two"]
    assert site.counter.idle == 0
    resource.finish_all()
    assert site.counter.idle == 1


def test_http2_connection_is_idle_without_open_streams():
    resource = Hanging()
    site = make_site(resource, h2c=True, max_connections=1)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    assert site.counter.idle == 1  # preface and SETTINGS only
    client.request(1)
    client.flush()
    assert site.counter.idle == 0
    _, refused = connect(site)
    assert parse_http1(refused.value())[0] == 503

    resource.finish_all()
    spin(site.reactor)
    client.events()
    assert site.counter.idle == 1
    newcomer, _ = connect(site)
    assert isinstance(newcomer, NegotiatingProtocol)
    assert transport.disconnecting
    goaway = [e for e in client.events() if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway and goaway[0].error_code == h2.errors.ErrorCodes.NO_ERROR
    lost(protocol)
    assert site.counter.open == 1


def test_connection_negotiating_h2c_is_idle():
    site = make_site(h2c=True, max_connections=1)
    protocol, transport = connect(site)
    feed(protocol, H2_PREFACE[:10])  # maybe HTTP/2, not decided yet
    assert site.counter.idle == 1


def test_websocket_hand_off_leaves_the_idle_list():
    site = make_site(max_connections=1)
    protocol, _ = connect(site)
    assert site.counter.idle == 1
    protocol.connection.detach()
    assert (site.counter.open, site.counter.idle) == (0, 0)
    assert protocol.channel is None  # forgotten: no cycle left for the collector


def test_counter_orders_idle_protocols():
    counter = ConnectionCounter(3)
    a, b, c = object(), object(), object()
    for p in (a, b, c):
        counter.went_idle(p)
    counter.went_busy(a)
    counter.went_idle(a)  # active again: now the most recent
    counter.went_busy(c)
    assert counter.longest_idle() is b
    assert counter.longest_idle() is a
    assert counter.longest_idle() is None


def test_alpn_offer_follows_the_listener():
    """Twisted adds the site's acceptableProtocols() to the TLS listener's ALPN list."""
    assert make_site().acceptableProtocols() == [b"h2", b"http/1.1"]
    site = make_site()
    site.http2 = False
    assert site.acceptableProtocols() == [b"http/1.1"]
