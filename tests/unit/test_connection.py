"""txzserver.server.connection: one Connection per accepted socket, handed to its channels."""

import pytest
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from txzserver.server.connection import Connection
from txzserver.server.http1 import HTTP1Channel
from txzserver.server.http2 import H2Channel
from txzserver.server.negotiate import H2_PREFACE

from .helpers import HTTP1_CHANNELS, Hanging, connect, feed, make_site, parse_http1, spin

pytestmark = pytest.mark.usefixtures("each_http1_parser")

H2C_UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")


def test_each_accepted_socket_gets_its_own_connection_handed_to_its_channel():
    site = make_site()
    one, _ = connect(site)
    two, _ = connect(site)
    assert isinstance(one.connection, Connection)
    assert one.connection is not two.connection
    channel = one.channel
    assert isinstance(channel, HTTP1_CHANNELS)
    assert channel.connection is one.connection  # given when it was built, not set later
    assert channel.site is site
    if isinstance(channel, HTTP1Channel):  # Twisted's channel reads these attributes
        assert channel.factory is site
        assert channel.callLater == site.reactor.callLater
    else:
        assert channel.reactor is site.reactor
    assert one.connection.publish_queue is not two.connection.publish_queue
    assert one.connection.publish_queue.totals is site.admission  # shared process totals


def test_a_connection_walks_from_open_through_idle_and_busy_to_closed():
    resource = Hanging()
    site = make_site(resource)
    protocol, transport = connect(site)
    connection, counter = protocol.connection, site.counter
    assert connection.counted and counter.open == 1 and counter.idle == 1
    assert connection.transport is transport and not connection.secure
    feed(protocol, b"GET / HTTP/1.1\r\n")
    assert (counter.idle, counter.reading_heads) == (0, 1)
    feed(protocol, b"Host: x\r\n\r\n")
    assert (counter.idle, counter.reading_heads) == (0, 0)  # published: busy
    resource.finish_all()
    assert counter.idle == 1
    protocol.connectionLost(Failure(ConnectionDone()))
    assert not connection.counted and counter.open == 0 and counter.idle == 0
    assert connection.channel is None


def test_an_evicted_connection_closes_its_channel_and_frees_its_slot_once():
    site = make_site(max_connections=1)
    protocol, transport = connect(site)
    connection = protocol.connection
    newcomer, _ = connect(site)
    assert newcomer.connection.counted and not connection.counted
    assert transport.disconnecting and site.counter.evicted == 1
    protocol.connectionLost(Failure(ConnectionDone()))  # late: the slot was freed already
    assert site.counter.open == 1


def test_prior_knowledge_h2c_keeps_the_connection_and_its_publish_queue():
    site = make_site(h2c=True)
    protocol, _ = connect(site)
    connection, queue = protocol.connection, protocol.connection.publish_queue
    feed(protocol, H2_PREFACE)
    assert isinstance(protocol.channel, H2Channel)
    assert protocol.channel.connection is connection
    assert connection.protocol_name == "h2c"
    assert connection.publish_queue is queue
    assert protocol.channel._reactor is site.reactor  # the site's, not the global reactor


def test_upgrade_to_h2c_hands_the_same_connection_to_the_http2_channel():
    site = make_site(h2c=True)
    protocol, transport = connect(site)
    connection = protocol.connection
    feed(protocol, H2C_UPGRADE)
    assert transport.value().startswith(b"HTTP/1.1 101 ")
    assert isinstance(protocol.channel, H2Channel) and protocol.channel.connection is connection
    assert connection.protocol_name == "h2c"
    spin(site.reactor)
    assert site.counter.idle == 1  # stream 1 (the upgraded request) answered: no open stream


def test_a_503_newcomer_gets_no_connection():
    site = make_site(max_connections=1)
    feed(connect(site)[0], b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    protocol, transport = connect(site)
    assert not hasattr(protocol, "connection")
    assert parse_http1(transport.value())[0] == 503
    assert site.counter.refused == 1
