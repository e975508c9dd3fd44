"""txzserver.server.http2: the idle timeout that waits for open streams."""

import h2.events

from txzserver.server.http2 import H2Channel

from .helpers import (
    Echo, H2Client, Hanging, ThreadsReactor, connect, make_settings, make_site, responses, spin,
)

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


def test_interfaces():
    from twisted.internet.interfaces import IProtocol, IPushProducer
    from zope.interface.verify import verifyObject
    h2 = H2Channel(make_settings(), reactor=ThreadsReactor())
    assert verifyObject(IProtocol, h2)
    assert verifyObject(IPushProducer, h2)
