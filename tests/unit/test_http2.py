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


# Rapid Reset (CVE-2023-44487) and the reset budget

def _flood(client, pairs, first=1):
    import h2.errors
    for n in range(pairs):
        stream_id = first + 2 * n
        client.request(stream_id)
        client.conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
    client.flush()


def test_a_few_cancelled_streams_are_fine():
    """Browsers cancel streams when a page is left: well within the default budget (100)."""
    site, protocol, transport, client = _h2_connection(Hanging(), timeout=60)
    _flood(client, 20)
    assert not transport.disconnecting


def test_reset_budget_closes_the_connection_past_the_burst():
    """Rapid Reset (CVE-2023-44487): GOAWAY ENHANCE_YOUR_CALM once the budget is spent."""
    import h2.errors
    resource = Hanging()
    site = make_site(resource, h2c=True, http2_max_reset_burst=5, http2_reset_rate=1)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    _flood(client, 5)
    assert not transport.disconnecting
    site.reactor.advance(2)  # two tokens come back
    _flood(client, 2, first=11)
    assert not transport.disconnecting
    _flood(client, 1, first=15)
    assert transport.disconnecting
    terminated = [e for e in client.events() if isinstance(e, h2.events.ConnectionTerminated)]
    assert terminated and terminated[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_settings_advertised_to_the_client():
    site = make_site(Echo(), h2c=True, http2_max_concurrent_streams=7, max_header_size=8192)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    remote = client.conn.remote_settings
    assert remote.max_concurrent_streams == 7
    assert remote.max_header_list_size == 8192
    assert protocol.channel.conn.decoder.max_header_list_size == 8192
