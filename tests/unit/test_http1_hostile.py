"""txzserver.server.http1 against hostile HTTP/1.1 (the server faces the internet, or a front
that forwards what it does not understand): request smuggling, malformed
heads, absolute and authority-form targets, Connection lists, a stalled body.

Each refused request gets one error naming the RFC clause, the connection closes, and
nothing reaches the resource: neither the request nor a request hidden in its body.
The real-server counterpart is tests/integration/test_http1_hostile.py.
"""

import pytest

from txzserver.server.http1 import CONTROL_CHARACTERS, header_error, target_error

from .helpers import assert_rejected, connect, feed, make_site, parse_http1
from .test_environ import environ, request

pytestmark = pytest.mark.usefixtures("each_http1_parser")

HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def post(headers, body=b"", version=b"HTTP/1.1"):
    head = b"POST / %s\r\nHost: x\r\n" % version + b"".join(h + b"\r\n" for h in headers)
    return head + b"\r\n" + body + HIDDEN


@pytest.mark.parametrize("data, code, reason", [
    (post([b"Content-Length: 5", b"Transfer-Encoding: chunked"], b"0\r\n\r\n"),
     400, b"more than one Content-Length or Transfer-Encoding (RFC 9112 6.3)"),
    (post([b"Transfer-Encoding: chunked", b"Content-Length: 5"], b"0\r\n\r\n"),
     400, b"more than one Content-Length or Transfer-Encoding"),
    (post([b"Content-Length: 5", b"Content-Length: 5"], b"abcde"), 400, b"more than one"),
    (post([b"Content-Length: 5, 5"], b"abcde"), 400, b"Content-Length 5, 5 is not one decimal"),
    (post([b"Content-Length: 5, 6"], b"abcde"), 400, b"Content-Length 5, 6 is not one decimal"),
    (post([b"Content-Length: -1"]), 400, b"Content-Length -1 is not one decimal number"),
    (post([b"Content-Length: +5"], b"abcde"), 400, b"Content-Length +5 is not one decimal"),
    (post([b"Content-Length: 5a"], b"abcde"), 400, b"Content-Length 5a is not one decimal"),
    (post([b"Content-Length: \xd9\xa5"], b"abcde"), 400, b"is not one decimal"),  # Arabic 5
    (post([b"Content-Length: " + b"9" * 19]), 413, b"Content-Length of 19 digits is too large"),
    (post([b"Content-Length: " + b"9" * 5000]), 413, b"Content-Length of 5000 digits"),
    (post([b"Transfer-Encoding: identity"]), 400,
     b"Transfer-Encoding identity: only chunked is accepted (RFC 9112 6.3)"),
    (post([b"Transfer-Encoding: identity", b"Content-Length: 3"], b"abc"), 400,
     b"only chunked is accepted"),
    (post([b"Transfer-Encoding: chunked, identity"], b"0\r\n\r\n"), 400, b"only chunked"),
    (post([b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"), 400, b"only chunked"),
    (post([b"Transfer-Encoding: xchunked"], b"0\r\n\r\n"), 400, b"only chunked"),
    (post([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], b"0\r\n\r\n"), 400,
     b"more than one Content-Length or Transfer-Encoding"),
    (post([b"Transfer-Encoding: chunked"], b"3\r\nabc\r\n0\r\n\r\n", b"HTTP/1.0"), 400,
     b"Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)"),
    (post([b"Transfer-Encoding: chunked"], b"zz\r\nabc\r\n0\r\n\r\n"), 400, b"malformed request"),
    (post([b"Transfer-Encoding: chunked"], b"-3\r\nabc\r\n0\r\n\r\n"), 400, b"malformed request"),
    (post([b"Transfer-Encoding: chunked"], b"3;x=" + b"y" * 2000 + b"\r\nabc\r\n0\r\n\r\n"),
     400, b"malformed request"),
    (post([b"Transfer-Encoding: chunked"], b"3\r\nabc0\r\n\r\n"), 400, b"malformed request"),
])
@pytest.mark.parametrize("bytewise", [False, True])
def test_smuggling_attempt_is_refused_and_nothing_reaches_the_resource(data, code, reason, bytewise):
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, data, bytewise=bytewise)
    assert_rejected(site, transport, code, reason)


@pytest.mark.parametrize("head, reason", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", b"obs-fold"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", b"obs-fold"),
    (b"GET / HTTP/1.1\r\n X-A: a\r\nHost: x\r\n\r\n", b"obs-fold"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", b"control character in the value of"
                                                          b" header x-a (RFC 9110 5.5)"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", b"control character"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x1bb\r\n\r\n", b"control character"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n", b"control character"),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", b"malformed request"),
    (b"GET / HTTP/1.1\r\n\r\n", b"request without a Host header (RFC 9112 3.2)"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"more than one Host header (RFC 9112 3.2)"),
    (b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
     b"CONNECT: this server is not a proxy (RFC 9112 3.2.3)"),
    (b"GET example.org:80 HTTP/1.1\r\nHost: x\r\n\r\n", b"neither a path nor an http(s) URL"),
    (b"GET ftp://example.org/ HTTP/1.1\r\nHost: x\r\n\r\n", b"neither a path nor an http(s) URL"),
    (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", b"neither a path nor an http(s) URL"),
])
def test_malformed_head_gets_400_with_its_reason(head, reason):
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, head + HIDDEN)
    assert_rejected(site, transport, 400, reason)


def test_header_error_and_target_error_accept_what_is_fine():
    from twisted.web.http_headers import Headers
    headers = Headers({b"host": [b"x"]})
    for line in (b"Content-Length:  5 ", b"Transfer-Encoding: Chunked", b"X-A: caf\xc3\xa9\ttab",
                 b"X-Empty:"):
        assert header_error(line, b"HTTP/1.1", Headers()) is None, line
    assert header_error(b"Host: y", b"HTTP/1.1", headers) == (
        400, b"more than one Host header (RFC 9112 3.2)")
    for target in (b"/", b"//double", b"http://h/p", b"HTTPS://h"):
        assert target_error(b"GET", target, b"HTTP/1.1", headers) is None, target
    assert target_error(b"OPTIONS", b"*", b"HTTP/1.1", headers) is None
    assert target_error(b"GET", b"/", b"HTTP/1.0", Headers()) is None  # Host is HTTP/1.1's
    assert b"\t" not in CONTROL_CHARACTERS and len(CONTROL_CHARACTERS) == 32


@pytest.mark.parametrize("body", [
    b"3;name=value;flag\r\nabc\r\n0\r\n\r\n",  # chunk extensions are ignored
    b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n",  # trailers are read and dropped
])
def test_chunk_extensions_and_trailers_are_accepted(body):
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
         + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n", bytewise=True)
    assert transport.value().count(b"HTTP/1.1 200 OK") == 2
    assert [r.path for r in site.resource.requests] == [b"/", b"/next"]
    assert b"POST / abc" in transport.value()


def test_content_length_with_whitespace_is_accepted():
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \t 5 \r\n\r\nabcde")
    assert parse_http1(transport.value())[2] == b"POST / abcde"


def test_absolute_form_is_served_with_the_host_of_the_uri():
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, b"GET http://example.org/a?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert parse_http1(transport.value())[0] == 200
    env = environ(request(b"http://user@example.org:8080/a%20b?x=1",
                          headers=[(b"Host", b"other")]))
    assert (env["HTTP_HOST"], env["SERVER_NAME"], env["PATH_INFO"]) == (
        "example.org:8080", "example.org", "/a b")


@pytest.mark.parametrize("connection", [b"keep-alive,close", b"keep-alive, close",
                                        b"Keep-Alive,Close"])
def test_close_anywhere_in_the_connection_list_closes(connection):
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, b"GET /1 HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n\r\n" % connection
         + b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    code, headers, _ = parse_http1(transport.value())
    assert (code, headers[b"connection"]) == (200, b"close")
    assert transport.disconnecting
    assert [r.path for r in site.resource.requests] == [b"/1"]


def test_close_on_a_second_connection_line_closes():
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n")
    assert transport.disconnecting


def test_http10_keep_alive_gets_one_answer_then_close():
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.0 200 OK")
    assert transport.value().count(b"HTTP/1.0 ") == 1
    assert transport.disconnecting
    assert [r.path for r in site.resource.requests] == [b"/1"]


def test_pipelined_requests_are_answered_in_order_once_each():
    site = make_site()
    protocol, transport = connect(site)
    feed(protocol, b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(5)))
    assert [r.path for r in site.resource.requests] == [b"/%d" % n for n in range(5)]
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in transport.value().split(b"HTTP/1.1 ")[1:]]
    assert [body.split(b" ")[1] for body in bodies] == [b"/%d" % n for n in range(5)]


def test_stalled_body_gets_408_at_idle_timeout():
    site = make_site(header_timeout=2, idle_timeout=10)
    protocol, transport = connect(site)
    feed(protocol, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc")
    site.reactor.advance(9.9)
    assert not transport.disconnecting
    site.reactor.advance(0.2)
    code, headers, body = parse_http1(transport.value())
    assert (code, headers[b"connection"]) == (408, b"close")
    assert body == b"request body incomplete: nothing received for 10 seconds (idle-timeout)\n"
    assert transport.disconnecting
    assert site.resource.requests == []


def test_idle_timeout_between_requests_closes_without_an_answer():
    site = make_site(header_timeout=2, idle_timeout=10)
    protocol, transport = connect(site)
    feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    transport.clear()
    site.reactor.advance(10.1)
    assert transport.disconnecting
    assert transport.value() == b""
