"""txzserver.server.errors: early error responses, and how each protocol sends them."""

import pytest
from twisted.internet.testing import StringTransport

from txzserver.server import errors
from txzserver.server.http1 import HTTP1Channel

from .helpers import connect, make_site, parse_http1

pytestmark = pytest.mark.usefixtures("each_http1_parser")


def test_http1_error_response_is_complete():
    data = errors.http1_error_response(413, "too big (max-request-body-size)")
    code, headers, body = parse_http1(data)
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert code == 413
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers[b"connection"] == b"close"
    assert body == b"too big (max-request-body-size)\n"
    assert int(headers[b"content-length"]) == len(body)


def test_http1_error_response_unknown_code_and_utf8_reason():
    data = errors.http1_error_response(499, "caf\u00e9")
    assert data.startswith(b"HTTP/1.1 499 Error\r\n")
    code, headers, body = parse_http1(data)
    assert body == "caf\u00e9\n".encode("utf-8")
    assert int(headers[b"content-length"]) == len(body)


def test_every_known_reason_is_bytes():
    for code, reason in errors.REASONS.items():
        assert isinstance(reason, bytes) and reason
        assert errors.http1_error_response(code, "x").split(b"\r\n")[0].endswith(reason)


def test_http1_reject_writes_once_and_closes():
    site = make_site()
    protocol, transport = connect(site)
    channel = protocol.channel
    channel.reject(431, "first")
    channel.reject(400, "second")
    assert transport.value().count(b"HTTP/1.1 ") == 1
    assert parse_http1(transport.value())[0] == 431
    assert transport.disconnecting
    assert channel.rejected
    # Input after the rejection is ignored.
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().count(b"HTTP/1.1 ") == 1


def test_reject_of_a_finished_request_does_nothing():
    from txzserver.server.request import ZopeRequest
    site = make_site()
    protocol, transport = connect(site)
    request = ZopeRequest(protocol.channel, settings=site.settings)
    request.channel = None  # what Twisted does once the request is finished
    request.reject(413, "late")
    assert transport.value() == b""


def test_request_reject_on_http1_uses_its_channel(each_http1_parser):
    from txzserver.server.leanrequest import LeanRequest, RawHeaders
    from txzserver.server.request import ZopeRequest
    site = make_site()
    protocol, transport = connect(site)
    channel = protocol.channel
    if each_http1_parser == "twisted":
        assert isinstance(channel, HTTP1Channel)
        request = channel.requestFactory(channel, 0)
        assert isinstance(request, ZopeRequest) and request.protocol is channel
    else:
        request = LeanRequest(channel, b"GET", b"/", b"HTTP/1.1", RawHeaders(), site.settings, True)
        assert request.protocol is channel
    request.reject(413, "too big")
    assert parse_http1(transport.value())[:1] == (413,)


def test_peer_of_odd_transports():
    assert errors.peer_of(object()) == "?"
    transport = StringTransport()
    assert errors.peer_of(transport) == "192.168.1.1:54321"
