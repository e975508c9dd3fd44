"""txzserver.server.http1: header limits with 431 and a reason, 400 that says why."""

import pytest

from txzserver.server.http1 import HTTP1Channel
from txzserver.server.llhttp1 import LLHTTP1Channel

from .helpers import assert_rejected, connect, feed, make_settings, make_site, parse_http1

pytestmark = pytest.mark.usefixtures("each_http1_parser")

# HTTP/1.1 limits

def test_header_line_too_long_gives_431_byte_by_byte():
    site = make_site(max_header_size=1024)
    protocol, transport = connect(site)
    feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n", bytewise=True)
    assert_rejected(site, transport, 431, b"max-header-size")


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


def test_limits_are_read_from_the_settings():
    site = make_site(max_headers=7, max_header_size=4096, idle_timeout=12, http1_parser="twisted")
    channel = connect(site)[0].channel
    assert (channel.maxHeaders, channel.totalHeadersSize, channel.MAX_LENGTH) == (7, 4096, 4096)
    assert channel.timeOut == 12


def test_interfaces():
    from twisted.internet.interfaces import IProtocol
    from zope.interface.verify import verifyObject
    assert verifyObject(IProtocol, HTTP1Channel(make_settings()))
    assert verifyObject(IProtocol, LLHTTP1Channel(make_settings()))


# header-timeout: the request head must arrive in time (slowloris)

def test_slowloris_head_gets_408_after_header_timeout():
    site = make_site(header_timeout=2, idle_timeout=60)
    protocol, transport = connect(site)
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1":  # a byte every 0.1 s: never idle
        feed(protocol, bytes([byte]))
        site.reactor.advance(0.1)
        if transport.disconnecting:
            break
    assert site.reactor.seconds() == pytest.approx(2.0)
    code, headers, body = parse_http1(transport.value())
    assert code == 408
    assert b"header-timeout" in body
    assert headers[b"connection"] == b"close"
    assert transport.disconnecting
    assert site.resource.requests == []


def test_connection_that_sends_nothing_gets_408_after_header_timeout():
    site = make_site(header_timeout=2, idle_timeout=60)
    protocol, transport = connect(site)
    site.reactor.advance(1.9)
    assert not transport.disconnecting
    site.reactor.advance(0.2)
    assert parse_http1(transport.value())[0] == 408


def test_body_is_not_bound_by_header_timeout():
    site = make_site(header_timeout=2, idle_timeout=60)
    protocol, transport = connect(site)
    feed(protocol, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
    for _ in range(5):  # 5 s of a slow body, a byte per second: within idle-timeout
        site.reactor.advance(1)
    assert not transport.disconnecting
    feed(protocol, b"def")
    code, _, body = parse_http1(transport.value())
    assert (code, body) == (200, b"POST / abcdef")


def test_idle_keep_alive_connection_waits_for_idle_timeout_then_times_the_next_head():
    site = make_site(header_timeout=2, idle_timeout=60)
    protocol, transport = connect(site)
    feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parse_http1(transport.value())[0] == 200
    transport.clear()
    site.reactor.advance(30)  # idle between requests: only idle-timeout applies
    assert not transport.disconnecting
    feed(protocol, b"GET / HT")  # a new request's first bytes start the header timer
    site.reactor.advance(1.9)
    assert not transport.disconnecting
    site.reactor.advance(0.2)
    assert parse_http1(transport.value())[0] == 408


def test_each_request_gets_its_own_header_timeout():
    site = make_site(header_timeout=2, idle_timeout=60)
    protocol, transport = connect(site)
    for _ in range(3):
        feed(protocol, b"GET / HTTP/1.1\r\n")
        site.reactor.advance(1.5)
        feed(protocol, b"Host: x\r\n\r\n")
        site.reactor.advance(1.5)
    assert transport.value().count(b"HTTP/1.1 200 OK") == 3
    assert not transport.disconnecting
    assert site.reactor.getDelayedCalls() and all(
        "head_timed_out" not in repr(call) for call in site.reactor.getDelayedCalls())


def test_header_timer_stops_when_the_connection_switches_to_http2():
    from txzserver.server.negotiate import H2_PREFACE
    site = make_site(h2c=True, header_timeout=2, idle_timeout=60)
    protocol, transport = connect(site)
    feed(protocol, H2_PREFACE)
    site.reactor.advance(10)
    assert not transport.disconnecting
    assert b"408" not in transport.value()


# Bare LF line endings: 400 at once instead of waiting forever for a CRLF

@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"GET / HTTP/1.1\r\nHost: x\n\n",
    b"GET / HTTP/1.1\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\n",
])
@pytest.mark.parametrize("bytewise", [False, True])
def test_bare_lf_in_request_head_gives_400_at_once(head, bytewise):
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, head, bytewise=bytewise)
    code, headers, body = parse_http1(transport.value())
    assert code == 400
    assert b"bare LF in request head" in body
    assert headers[b"connection"] == b"close"
    assert transport.disconnecting
    assert transport.value().count(b"HTTP/1.1 ") == 1
    assert site.resource.requests == []


def test_bare_lf_after_a_pipelined_request_is_refused_after_its_answer():
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /bad HTTP/1.1\nHost: x\n\n")
    assert transport.value().count(b"HTTP/1.1 200 OK") == 1
    assert b"bare LF in request head" in transport.value()
    assert transport.disconnecting


def test_lf_in_a_body_and_crlf_split_across_reads_are_fine():
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\na\nb\n")
    feed(protocol, b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n", bytewise=True)
    assert transport.value().count(b"HTTP/1.1 200 OK") == 2
    assert b"POST / a\nb\n" in transport.value()
    assert not transport.disconnecting
