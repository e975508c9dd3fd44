"""txzserver.server.http1: header limits with 431 and a reason, 400 that says why."""

import pytest

from txzserver.server.http1 import HTTP1Channel

from .helpers import connect, feed, make_settings, make_site, parse_http1

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


def test_limits_are_read_from_the_settings():
    settings = make_settings(max_headers=7, max_header_size=4096, idle_timeout=12)
    channel = HTTP1Channel(settings)
    assert (channel.maxHeaders, channel.totalHeadersSize, channel.MAX_LENGTH) == (7, 4096, 4096)
    assert channel.timeOut == 12


def test_interfaces():
    from twisted.internet.interfaces import IProtocol
    from zope.interface.verify import verifyObject
    assert verifyObject(IProtocol, HTTP1Channel(make_settings()))
