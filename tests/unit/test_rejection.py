"""txzserver.server.rejection: early error responses on HTTP/1.1 and HTTP/2."""

from twisted.internet.testing import StringTransport

from txzserver.server import rejection
from txzserver.server.channel import LimitedHTTPChannel

from .helpers import connect, make_site, parse_http1


def test_http1_error_response_is_complete():
    data = rejection.http1_error_response(413, "too big (max-request-body-size)")
    code, headers, body = parse_http1(data)
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert code == 413
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers[b"connection"] == b"close"
    assert body == b"too big (max-request-body-size)\n"
    assert int(headers[b"content-length"]) == len(body)


def test_http1_error_response_unknown_code_and_utf8_reason():
    data = rejection.http1_error_response(499, "caf\u00e9")
    assert data.startswith(b"HTTP/1.1 499 Error\r\n")
    code, headers, body = parse_http1(data)
    assert body == "caf\u00e9\n".encode("utf-8")
    assert int(headers[b"content-length"]) == len(body)


def test_every_known_reason_is_bytes():
    for code, reason in rejection.REASONS.items():
        assert isinstance(reason, bytes) and reason
        assert rejection.http1_error_response(code, "x").split(b"\r\n")[0].endswith(reason)


def test_reject_http1_writes_once_and_closes():
    site = make_site()
    protocol, transport = connect(site)
    channel = protocol.channel
    rejection.reject_http1(channel, 431, "first")
    rejection.reject_http1(channel, 400, "second")
    assert transport.value().count(b"HTTP/1.1 ") == 1
    assert parse_http1(transport.value())[0] == 431
    assert transport.disconnecting
    assert channel.rejected
    # Input after the rejection is ignored.
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().count(b"HTTP/1.1 ") == 1


def test_reject_without_channel_does_nothing():
    class Finished:
        channel = None
    rejection.reject(Finished(), 413, "late")


def test_reject_on_http1_request_uses_the_channel():
    site = make_site()
    protocol, transport = connect(site)
    channel = protocol.channel

    class Request:
        pass
    request = Request()
    request.channel = channel
    rejection.reject(request, 413, "too big")
    assert parse_http1(transport.value())[:1] == (413,)
    assert isinstance(channel, LimitedHTTPChannel)


def test_peer_of_odd_transports():
    assert rejection._peer(object()) == "?"
    transport = StringTransport()
    assert rejection._peer(transport) == "192.168.1.1:54321"
