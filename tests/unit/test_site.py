"""txzserver.server.site: connection limit shared by all listeners, settings passed on."""

import logging

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from txzserver.server.negotiate import NegotiatingProtocol
from txzserver.server.site import ConnectionCounter, CountedProtocol

from .helpers import PEER, connect, feed, make_settings, make_site, parse_http1


def test_second_connection_over_the_limit_gets_503_and_is_closed():
    site = make_site(max_connections=1)
    first, first_transport = connect(site)
    assert isinstance(first, CountedProtocol)
    assert site.counter.open == 1

    second, transport = connect(site)
    assert not isinstance(second, NegotiatingProtocol)
    code, headers, body = parse_http1(transport.value())
    assert code == 503
    assert b"max-connections" in body
    assert headers[b"connection"] == b"close"
    assert transport.disconnecting
    assert site.counter.open == 1

    # The first connection still works; once it is gone a new one is accepted.
    feed(first, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parse_http1(first_transport.value())[0] == 200
    first.connectionLost(Failure(ConnectionDone()))
    assert site.counter.open == 0
    third, _ = connect(site)
    assert isinstance(third, CountedProtocol)


def test_listeners_share_one_counter():
    settings = make_settings(max_connections=2)
    counter = ConnectionCounter(settings.max_connections)
    one = make_site(settings=settings, counter=counter)
    two = make_site(settings=settings, counter=counter, h2c=True)
    connect(one)
    connect(two)
    _, transport = connect(one)
    assert parse_http1(transport.value())[0] == 503
    assert counter.open == 2


def test_settings_reach_the_channel():
    site = make_site(h2c=True, max_headers=7, max_header_size=2048, idle_timeout=12.5)
    protocol, _ = connect(site)
    assert protocol.h2c is True
    assert protocol.settings is site.settings  # handed over, not copied
    channel = protocol.channel
    assert channel.settings is site.settings
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
    connect(site)
    assert verifyObject(IProtocol, site.buildProtocol(PEER))  # the 503 protocol
