"""Body limits chosen by credentials (max-anonymous-body-size) and the process's cap on
spooled bytes (max-spool-size): 413 and 503 with Retry-After before Zope is asked."""

from tests.robustness import ROWS

from .helpers import H2Client, assert_rejected, connect, feed, make_site, parse_http1, responses
from txzserver.server.request import SPOOL_RETRY_AFTER, has_credentials
from twisted.internet.error import ConnectionDone
from twisted.web.http_headers import Headers

import pytest

pytestmark = pytest.mark.usefixtures("each_http1_parser")


def post(body, *, headers=b"", length=None):
    length = len(body) if length is None else length
    return (b"POST /upload HTTP/1.1\r\nHost: x\r\n" + headers
            + b"Content-Length: %d\r\n\r\n" % length + body)


def chunked(*chunks):
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + encoded


def test_credentials_are_an_authorization_header_or_a_login_cookie():
    assert has_credentials(Headers({b"Authorization": [b"Basic eDp5"]}))
    assert has_credentials(Headers({b"Cookie": [b"lang=en; __ac=abc"]}))
    assert has_credentials(Headers({b"Cookie": [b"auth_token=jwt"]}))
    assert not has_credentials(Headers({b"Cookie": [b"lang=en; x__ac=1; __acx=2"]}))
    assert not has_credentials(Headers({b"Host": [b"x"]}))


def test_anonymous_body_above_its_limit_gets_413_naming_the_key():
    site = make_site(max_request_body_size=1000, max_anonymous_body_size=100)
    protocol, transport = connect(site)
    feed(protocol, post(b"a" * 101))
    assert_rejected(site, transport, 413, b"101 bytes or more exceeds the limit of 100 bytes for a"
                                          b" request without credentials (max-anonymous-body-size)")


def test_anonymous_chunked_body_above_its_limit_gets_413():
    site = make_site(max_request_body_size=1000, max_anonymous_body_size=100)
    protocol, transport = connect(site)
    feed(protocol, chunked(b"a" * 60, b"b" * 60))
    assert_rejected(site, transport, 413, b"(max-anonymous-body-size)")


def test_a_body_with_credentials_gets_the_request_limit():
    for credentials in (b"Authorization: Basic eDp5\r\n", b"Cookie: lang=en; __ac=abc\r\n"):
        site = make_site(max_request_body_size=1000, max_anonymous_body_size=100)
        protocol, transport = connect(site)
        feed(protocol, post(b"a" * 1000, headers=credentials))
        assert parse_http1(transport.value())[0] == 200
        feed(protocol, post(b"a" * 1001, headers=credentials))
        assert b"(max-request-body-size)" in transport.value()


def test_h2_credentials_after_content_length_still_count():
    site = make_site(h2c=True, max_request_body_size=1000, max_anonymous_body_size=100)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    client.request(1, method="POST", path="/up", body=b"p" * 500,
                   headers=[("content-length", "500"), ("authorization", "Basic eDp5")])
    client.request(3, method="POST", path="/anon", body=b"p" * 500,
                   headers=[("content-length", "500")])
    client.flush()
    answers = responses(client.events())
    assert answers[1]["status"] == 200
    assert answers[3]["status"] == 413
    assert b"(max-anonymous-body-size)" in answers[3]["body"]


def _spool_site(limit=1000):
    return make_site(max_spool_size=limit, request_spool_threshold=10, max_anonymous_body_size=0)


def test_a_body_beyond_the_spool_budget_gets_503_with_retry_after():
    site = _spool_site()
    first, first_transport = connect(site)
    feed(first, post(b"f" * 100, length=800))  # 800 bytes reserved, 100 received so far
    assert site.spool.used == 800
    second, transport = connect(site)
    feed(second, post(b"", length=300))
    code, headers, body = parse_http1(transport.value())
    assert code == 503
    assert headers[b"retry-after"] == b"%d" % SPOOL_RETRY_AFTER
    assert b"800 bytes spooled, max-spool-size 1000" in body
    assert transport.disconnecting
    assert (site.spool.used, site.spool.refused) == (800, 1)
    assert site.resource.requests == []
    # the first body completes: its bytes are given back, and the second fits now
    feed(first, b"f" * 700)
    assert parse_http1(first_transport.value())[0] == 200
    assert site.spool.used == 0
    third, transport = connect(site)
    feed(third, post(b"t" * 300))
    assert parse_http1(transport.value())[0] == 200
    assert site.spool.used == 0


def test_a_chunked_body_takes_its_share_as_it_grows():
    site = _spool_site(limit=100)
    protocol, transport = connect(site)
    feed(protocol, chunked(b"a" * 60, b"b" * 60))
    code, headers, _ = parse_http1(transport.value())
    assert (code, headers[b"retry-after"]) == (503, b"%d" % SPOOL_RETRY_AFTER)
    assert site.resource.requests == []


def test_a_client_that_goes_away_gives_its_share_back():
    site = _spool_site()
    protocol, transport = connect(site)
    feed(protocol, post(b"g" * 10, length=900))
    assert site.spool.used == 900
    transport.loseConnection()
    protocol.connectionLost(ConnectionDone())
    assert site.spool.used == 0


def test_the_readme_rows_figures():
    assert SPOOL_RETRY_AFTER == ROWS["spool_cap"].figures["retry_after"]
    assert ROWS["anonymous_body"].figures["body_kb"] > ROWS["anonymous_body"].figures["limit_kb"]


def test_bodies_kept_in_memory_take_nothing():
    site = _spool_site(limit=5)
    protocol, transport = connect(site)
    feed(protocol, post(b"m" * 10))
    assert parse_http1(transport.value())[0] == 200
    assert (site.spool.used, site.spool.refused) == (0, 0)
