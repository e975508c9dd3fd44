"""txzserver.server.request.ZopeRequest: 413 early, small bodies in memory, large ones spooled."""

import io

import pytest

from .helpers import (
    H2Client, assert_rejected, connect, feed, make_site, parse_http1, responses,
)

pytestmark = pytest.mark.usefixtures("each_http1_parser")


def post(body, *, headers=b"", length=True):
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\n" + headers
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def chunked(*chunks):
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return post(encoded, headers=b"Transfer-Encoding: chunked\r\n", length=False)


# HTTP/1.1

def test_declared_length_above_limit_gets_413_before_the_body():
    site = make_site(max_request_body_size=100)
    protocol, transport = connect(site)
    head = post(b"x" * 101)[:-101]
    feed(protocol, head, bytewise=True)
    code, headers, body = parse_http1(transport.value())
    assert code == 413
    assert b"max-request-body-size" in body
    assert b"101 bytes" in body
    assert headers[b"connection"] == b"close"
    assert transport.disconnecting
    # What the client still sends is ignored; the resource never runs.
    feed(protocol, b"x" * 101, bytewise=True)
    assert transport.value().count(b"HTTP/1.1 ") == 1
    assert site.resource.requests == []


def test_declared_length_at_limit_is_accepted():
    site = make_site(max_request_body_size=100)
    protocol, transport = connect(site)
    feed(protocol, post(b"x" * 100))
    code, _, body = parse_http1(transport.value())
    assert code == 200
    assert body == b"POST /upload " + b"x" * 100


def test_chunked_body_above_limit_gets_413():
    site = make_site(max_request_body_size=100)
    protocol, transport = connect(site)
    feed(protocol, chunked(b"a" * 60, b"b" * 60), bytewise=True)
    assert_rejected(site, transport, 413, b"max-request-body-size")


def test_chunked_body_within_limit_is_accepted():
    site = make_site(max_request_body_size=100)
    protocol, transport = connect(site)
    feed(protocol, chunked(b"a" * 50, b"b" * 50), bytewise=True)
    code, _, body = parse_http1(transport.value())
    assert code == 200
    assert body == b"POST /upload " + b"a" * 50 + b"b" * 50


def test_zero_limit_means_no_limit():
    site = make_site(max_request_body_size=0, request_spool_threshold=10)
    protocol, transport = connect(site)
    feed(protocol, post(b"z" * 5000))
    assert parse_http1(transport.value())[0] == 200


@pytest.mark.parametrize("size, in_memory", [(0, True), (10, True), (100, True), (101, False)])
def test_spool_threshold(size, in_memory):
    site = make_site(request_spool_threshold=100)
    protocol, transport = connect(site)
    feed(protocol, post(b"s" * size))
    assert parse_http1(transport.value())[0] == 200
    content = site.resource.bodies[0]
    assert isinstance(content, io.BytesIO) is in_memory
    if not in_memory:
        assert hasattr(content, "fileno")


def test_chunked_body_of_unknown_length_is_spooled():
    site = make_site(request_spool_threshold=100)
    protocol, transport = connect(site)
    feed(protocol, chunked(b"c" * 10))
    assert parse_http1(transport.value())[0] == 200
    assert not isinstance(site.resource.bodies[0], io.BytesIO)


def test_next_request_after_a_body_is_served():
    site = make_site(max_request_body_size=100)
    protocol, transport = connect(site)
    feed(protocol, post(b"x" * 10) + post(b"y" * 20), bytewise=True)
    assert transport.value().count(b"HTTP/1.1 200 OK") == 2
    assert transport.value().endswith(b"POST /upload " + b"y" * 20)


# HTTP/2

def _h2(site):
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    return protocol, transport, client


def test_h2_declared_length_above_limit_gets_413_and_the_connection_survives():
    site = make_site(h2c=True, max_request_body_size=100)
    protocol, transport, client = _h2(site)
    client.conn.send_headers(1, [(":method", "POST"), (":path", "/big"), (":scheme", "http"),
                                 (":authority", "x"), ("content-length", "1000")])
    # DATA already in flight when the server rejects the stream is ignored.
    client.conn.send_data(1, b"d" * 500)
    client.request(3, method="POST", path="/small", body=b"ok", headers=[("content-length", "2")])
    client.flush()
    answers = responses(client.events())
    assert answers[1]["status"] == 413
    assert b"max-request-body-size" in answers[1]["body"]
    assert answers[1]["ended"] or answers[1]["reset"] is not None
    assert (answers[3]["status"], answers[3]["body"]) == (200, b"POST /small ok")
    assert not transport.disconnecting

    client.request(5, path="/after")
    client.flush()
    answer = responses(client.events())[5]
    assert (answer["status"], answer["body"]) == (200, b"GET /after ")
    assert [r.path for r in site.resource.requests] == [b"/small", b"/after"]


def test_h2_body_without_length_above_limit_gets_413():
    site = make_site(h2c=True, max_request_body_size=100)
    protocol, transport, client = _h2(site)
    client.conn.send_headers(1, [(":method", "POST"), (":path", "/big"), (":scheme", "http"),
                                 (":authority", "x")])
    client.conn.send_data(1, b"d" * 80)
    client.conn.send_data(1, b"d" * 80, end_stream=True)
    client.flush()
    answers = responses(client.events())
    assert answers[1]["status"] == 413
    assert site.resource.requests == []
    assert not transport.disconnecting

    client.request(3, path="/again")
    client.flush()
    assert responses(client.events())[3]["status"] == 200


class _FullDisk:
    """An unbuffered spool file on a disk with ``room`` bytes left."""

    instances = []

    def __init__(self, room):
        self.room = room
        self.closed = False
        _FullDisk.instances.append(self)

    def write(self, data):
        if self.room == 0:
            import errno
            raise OSError(errno.ENOSPC, "No space left on device")
        taken = min(self.room, len(data))
        self.room -= taken
        return taken

    def close(self):
        self.closed = True


def test_a_full_spool_disk_gets_507_and_the_spool_file_is_closed(monkeypatch):
    from txzserver.server import request as request_module
    monkeypatch.setattr(request_module.tempfile, "TemporaryFile", lambda **kw: _FullDisk(150))
    site = make_site(request_spool_threshold=10)
    protocol, transport = connect(site)
    feed(protocol, post(b"x" * 400))
    assert_rejected(site, transport, 507, b"no space left")
    assert _FullDisk.instances[-1].closed


def test_partial_raw_writes_are_completed():
    from txzserver.server.request import _write_all

    class Trickle:
        def __init__(self):
            self.data = b""

        def write(self, view):
            self.data += bytes(view[:3])
            return min(3, len(view))
    spool = Trickle()
    _write_all(spool, b"abcdefghij")
    assert spool.data == b"abcdefghij"
