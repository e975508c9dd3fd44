"""Hostile HTTP/1.1 on raw sockets, hostile paths and Range headers against a real Plone site
(issue 11, "HTTP/1.1 (raw sockets)" and "Path and Range").

Every case asserts the exact answer, that the front page still answers within a second
right after it (warmed first), and, from Zope's own IPubStart events
(``tests.support.published``), what reached Zope: a refused request never, an accepted one
once, and never a second request made from the bytes of one (request smuggling, RFC 9112
6.3 and 11.2). Each request carries a marker in its query that the count looks for.

The server has one publisher thread and an idle-timeout of IDLE seconds (a stalled body is
answered 408 within it).
"""

import socket
import time

import httpx
import pytest

from tests.support.clients import connect, exchange, parse_response, read_until_closed
from tests.support.counting import start_counting_server
from tests.support.instance import ADMIN
from tests.support.published import published
from tests.support.slow import timed_get

IDLE = 4  # idle-timeout of the server, seconds
PAGE_LIMIT = 1.0  # seconds the front page may take right after a case
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(servers, site_id):
    server = start_counting_server(servers, "http1-hostile", extra=f"idle-timeout {IDLE}s",
                                   https=False)
    # The first rendering of the front page compiles templates (~1.5 s): do it before.
    assert timed_get(server.url(f"/{site_id}"), timeout=30)[1] == 200
    return server


def zope_saw(server, marker):
    """How many requests whose URL contains ``marker`` Zope has published."""
    return published(server.event_log.read_text(errors="replace"), marker)


def assert_responsive(server, site_id):
    seconds, status = timed_get(server.url(f"/{site_id}"), timeout=10)
    assert status == 200
    assert seconds < PAGE_LIMIT, f"the front page took {seconds:.2f} s"


def split_responses(raw):
    """The (status, headers, body) of each Content-Length framed response in ``raw``."""
    answers = []
    while raw:
        status, headers, body = parse_response(raw)
        answers.append((status, headers, body))
        head_length = raw.index(b"\r\n\r\n") + 4
        raw = raw[head_length + int(headers.get("content-length", len(raw))):]
    return answers


def request(method, target, headers=(), body=b"", version="HTTP/1.1"):
    lines = [f"{method} {target} {version}", *headers]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


# 1. Request smuggling and malformed heads: 400 (or 413) with a reason, then close, and
#    neither the request nor anything in its body reaches Zope.

def smuggle(case, headers, body, version="HTTP/1.1"):
    """A POST of ``body`` marked ``case``, then a GET marked ``smuggled-<case>`` hidden after it."""
    head = ["Host: localhost", "Content-Type: text/plain", *headers]
    hidden = request("GET", f"/Plone?smuggled-{case}=1", ["Host: localhost"])
    return request("POST", f"/Plone?case-{case}=1", head, body + hidden, version)


REFUSED = {
    # name: (request bytes, status, reason in the body)
    "cl-and-te": (smuggle("cl-and-te", ["Content-Length: 5", "Transfer-Encoding: chunked"],
                          b"0\r\n\r\n"), 400, b"more than one Content-Length or Transfer-Encoding"),
    "te-and-cl": (smuggle("te-and-cl", ["Transfer-Encoding: chunked", "Content-Length: 5"],
                          b"0\r\n\r\n"), 400, b"more than one Content-Length or Transfer-Encoding"),
    "two-lengths": (smuggle("two-lengths", ["Content-Length: 0", "Content-Length: 5"], b"abcde"),
                    400, b"more than one Content-Length"),
    "length-list-same": (smuggle("length-list-same", ["Content-Length: 5, 5"], b"abcde"),
                         400, b"Content-Length 5, 5 is not one decimal number"),
    "length-list-differ": (smuggle("length-list-differ", ["Content-Length: 5, 6"], b"abcde"),
                           400, b"Content-Length 5, 6 is not one decimal number"),
    "length-negative": (smuggle("length-negative", ["Content-Length: -1"], b""),
                        400, b"Content-Length -1 is not one decimal number"),
    "length-plus": (smuggle("length-plus", ["Content-Length: +5"], b"abcde"),
                    400, b"Content-Length +5 is not one decimal number"),
    "length-hex": (smuggle("length-hex", ["Content-Length: 0x5"], b"abcde"),
                   400, b"Content-Length 0x5 is not one decimal number"),
    "length-overflow": (smuggle("length-overflow", ["Content-Length: " + "9" * 30], b"abc"),
                        413, b"Content-Length of 30 digits is too large"),
    "length-5000-digits": (smuggle("length-5000-digits", ["Content-Length: " + "9" * 5000], b""),
                           413, b"Content-Length of 5000 digits is too large"),
    "te-chunked-identity": (smuggle("te-chunked-identity", ["Transfer-Encoding: chunked, identity"],
                                    b"0\r\n\r\n"), 400, b"only chunked is accepted"),
    "te-identity": (smuggle("te-identity", ["Transfer-Encoding: identity"], b""),
                    400, b"Transfer-Encoding identity: only chunked is accepted"),
    "te-identity-and-cl": (smuggle("te-identity-and-cl", ["Transfer-Encoding: identity",
                                                          "Content-Length: 3"], b"abc"),
                           400, b"only chunked is accepted"),
    "te-xchunked": (smuggle("te-xchunked", ["Transfer-Encoding: xchunked"], b"0\r\n\r\n"),
                    400, b"Transfer-Encoding xchunked: only chunked is accepted"),
    "te-http10": (smuggle("te-http10", ["Transfer-Encoding: chunked"], b"3\r\nabc\r\n0\r\n\r\n",
                          version="HTTP/1.0"), 400, b"Transfer-Encoding in an HTTP/1.0 request"),
    "te-twice": (smuggle("te-twice", ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
                         b"0\r\n\r\n"), 400, b"more than one Content-Length or Transfer-Encoding"),
    "chunk-size-not-hex": (smuggle("chunk-size-not-hex", ["Transfer-Encoding: chunked"],
                                   b"zz\r\nabc\r\n0\r\n\r\n"), 400, b"malformed request"),
    "chunk-size-negative": (smuggle("chunk-size-negative", ["Transfer-Encoding: chunked"],
                                    b"-3\r\nabc\r\n0\r\n\r\n"), 400, b"malformed request"),
    "chunk-size-0x": (smuggle("chunk-size-0x", ["Transfer-Encoding: chunked"],
                              b"0x3\r\nabc\r\n0\r\n\r\n"), 400, b"malformed request"),
    "chunk-extension-huge": (smuggle("chunk-extension-huge", ["Transfer-Encoding: chunked"],
                                     b"3;x=" + b"y" * 2000 + b"\r\nabc\r\n0\r\n\r\n"),
                             400, b"malformed request"),
    "chunk-without-crlf": (smuggle("chunk-without-crlf", ["Transfer-Encoding: chunked"],
                                   b"3\r\nabc0\r\n\r\n"), 400, b"malformed request"),
    "obs-fold": (request("GET", "/Plone?case-obs-fold=1", ["Host: localhost", "X-Folded: a",
                                                           " b"]), 400, b"obs-fold"),
    "bare-lf": (b"GET /Plone?case-bare-lf=1 HTTP/1.1\nHost: localhost\n\n", 400, b"bare LF"),
    "nul-in-value": (request("GET", "/Plone?case-nul-in-value=1", ["Host: localhost",
                                                                   "X-A: a\x00b"]),
                     400, b"control character in the value of header x-a"),
    "cr-in-value": (request("GET", "/Plone?case-cr-in-value=1", ["Host: localhost", "X-A: a\rb"]),
                    400, b"control character in the value of header x-a"),
    "ctl-in-value": (request("GET", "/Plone?case-ctl-in-value=1", ["Host: localhost",
                                                                   "X-A: a\x01b"]),
                     400, b"control character in the value of header x-a"),
    "del-in-value": (request("GET", "/Plone?case-del-in-value=1", ["Host: localhost",
                                                                   "X-A: a\x7fb"]),
                     400, b"control character in the value of header x-a"),
    "space-before-colon": (request("GET", "/Plone?case-space-before-colon=1",
                                   ["Host : localhost"]), 400, b"malformed request"),
    "no-host": (request("GET", "/Plone?case-no-host=1"), 400, b"without a Host header"),
    "two-hosts": (request("GET", "/Plone?case-two-hosts=1", ["Host: localhost", "Host: evil"]),
                  400, b"more than one Host header"),
    "connect": (request("CONNECT", "localhost:80", ["Host: localhost:80"]),
                400, b"CONNECT: this server is not a proxy"),
    "authority-form-get": (request("GET", "localhost:80", ["Host: localhost"]),
                           400, b"request-target is neither a path nor an http(s) URL"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_request_is_answered_once_and_reaches_nothing(server, site_id, case):
    data, code, reason = REFUSED[case]
    raw = exchange(server.port, data)
    status, headers, body = parse_response(raw)
    assert (status, headers["connection"]) == (code, "close")
    assert reason in body
    assert len(split_responses(raw)) == 1, raw
    assert_responsive(server, site_id)
    # With one publisher thread the page above was queued after anything this case made.
    assert zope_saw(server, f"case-{case}=") == 0
    assert zope_saw(server, f"smuggled-{case}=") == 0


# 2. Accepted oddities: answered once each, in order; a body is never a request.

def _get(marker, *headers, version="HTTP/1.1"):
    host = ["Host: localhost"] if version == "HTTP/1.1" else []
    return request("GET", f"/Plone?{marker}=1", [*host, *headers], version=version)


def _chunked_post(marker, body):
    return request("POST", f"/Plone?{marker}=1", ["Host: localhost", "Transfer-Encoding: chunked"],
                   body)


#: case: (request bytes, the markers Zope publishes once each, in the order answered); every
#: marker of a case starts with the case's name, and no other marker with that name reaches Zope.
ACCEPTED = {
    "length-with-ows": (request("POST", "/Plone?length-with-ows=1",
                                ["Host: localhost", "Content-Length:   5  ", "Connection: close"],
                                b"abcde"), ["length-with-ows"]),
    "chunk-extension": (_chunked_post("chunk-extension", b"3;name=value;flag\r\nabc\r\n0\r\n\r\n")
                        + _get("chunk-extension-next", "Connection: close"),
                        ["chunk-extension", "chunk-extension-next"]),
    "chunk-trailers": (_chunked_post("chunk-trailers",
                                     b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n")
                       + _get("chunk-trailers-next", "Connection: close"),
                       ["chunk-trailers", "chunk-trailers-next"]),
    "pipelined": (_get("pipelined-0") + _get("pipelined-1") + _get("pipelined-2")
                  + _get("pipelined-3", "Connection: close"),
                  ["pipelined-0", "pipelined-1", "pipelined-2", "pipelined-3"]),
    # RFC 9110 7.6.1: Connection is a list; Twisted saw "close" only alone on the first line.
    "connection-list-close": (_get("connection-list-close", "Connection: keep-alive,close")
                              + _get("connection-list-close-after"),
                              ["connection-list-close"]),
    # HTTP/1.0 keep-alive is not honoured: one answer, then close; what followed is dropped.
    "http10-keep-alive": (_get("http10-keep-alive", "Connection: keep-alive", version="HTTP/1.0")
                          + _get("http10-keep-alive-after", version="HTTP/1.0"),
                          ["http10-keep-alive"]),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_accepted_requests_are_answered_once_each_in_order(server, site_id, case):
    data, markers = ACCEPTED[case]
    raw = exchange(server.port, data)
    answers = split_responses(raw)
    assert [status for status, _, _ in answers] == [200] * len(markers), raw[:500]
    for _, _, body in answers:
        assert b"plone" in body.lower()
    assert_responsive(server, site_id)
    for marker in markers:
        assert zope_saw(server, f"{marker}=") == 1, marker
    assert zope_saw(server, case) == len(markers)  # and nothing else of this case


def test_absolute_form_target_takes_its_host_from_the_uri(server, site_id):
    """RFC 9112 3.2.2: accepted, and the URI's host wins over the Host header."""
    data = request("GET", "http://example.org/Plone?case-absolute=1",
                   ["Host: localhost", "Connection: close"])
    status, _, body = parse_response(exchange(server.port, data))
    assert status == 200
    assert b"http://example.org/Plone" in body
    assert b"//localhost" not in body
    assert_responsive(server, site_id)
    assert zope_saw(server, "case-absolute=") == 1


def test_chunk_size_overflow_waits_for_the_body_then_times_out(server, site_id):
    """A chunk of 2**96 - 1 bytes is read as chunk data until idle-timeout: 408, nothing
    of it (the hidden GET included) reaches Zope."""
    data = smuggle("chunk-overflow", ["Transfer-Encoding: chunked"],
                   b"ffffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n")
    with connect(server.port) as sock:
        sock.sendall(data)
        started = time.monotonic()
        assert_responsive(server, site_id)
        raw = read_until_closed(sock, timeout=IDLE + 10)
        elapsed = time.monotonic() - started
    status, headers, body = parse_response(raw)
    assert (status, headers["connection"]) == (408, "close")
    assert b"request body incomplete" in body and b"(idle-timeout)" in body
    assert IDLE - 1 < elapsed < IDLE + 3
    assert_responsive(server, site_id)
    assert zope_saw(server, "case-chunk-overflow=") == 0
    assert zope_saw(server, "smuggled-chunk-overflow=") == 0


# 3. Slow bodies: a declared 1 MB body that stalls is cut at idle-timeout with 408; one that
#    trickles holds its connection (not a publisher thread) while pages are served.

def _slow_post(marker):
    return request("POST", f"/Plone?{marker}=1", [
        "Host: localhost", "Content-Type: application/octet-stream", f"Content-Length: {MB}",
        "Connection: close"])


def test_stalled_body_gets_408_at_idle_timeout(server, site_id):
    with connect(server.port) as sock:
        sock.sendall(_slow_post("case-stalled") + b"x" * 1024)
        started = time.monotonic()
        assert_responsive(server, site_id)
        raw = read_until_closed(sock, timeout=IDLE + 10)
        elapsed = time.monotonic() - started
    status, headers, body = parse_response(raw)
    assert (status, headers["connection"]) == (408, "close")
    assert body == b"request body incomplete: nothing received for %d seconds (idle-timeout)\n" % IDLE
    assert IDLE - 1 < elapsed < IDLE + 3
    assert zope_saw(server, "case-stalled=") == 0


def test_trickled_body_holds_only_its_connection(server, site_id):
    """A byte every IDLE/4 seconds keeps idle-timeout from firing (there is no body timeout
    setting yet): the connection stays open for 2 x IDLE, pages answer within a second
    meanwhile, and Zope sees nothing until the body is complete."""
    with connect(server.port) as sock:
        sock.sendall(_slow_post("case-trickle"))
        started = time.monotonic()
        sent, pages = 0, []
        while time.monotonic() - started < 2 * IDLE:
            sock.sendall(b"x")
            sent += 1
            pages.append(timed_get(server.url(f"/{site_id}"), timeout=10))
            time.sleep(IDLE / 4)
        sock.settimeout(0.1)
        with pytest.raises(socket.timeout):
            sock.recv(100)  # no answer, and not closed
        for seconds, status in pages:
            assert status == 200 and seconds < PAGE_LIMIT, pages
        assert zope_saw(server, "case-trickle=") == 0
        sock.sendall(b"x" * (MB - sent))
        status, _, _ = parse_response(read_until_closed(sock, timeout=30))
    assert status == 200
    assert zope_saw(server, "case-trickle=") == 1


# 4. Paths: nothing outside Zope is served; 4xx or Zope's normal answer, never a 500.

HOSTILE_PATHS = [
    "/../../../../../../etc/passwd",
    "/Plone/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/Plone/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/Plone/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/Plone%00/x",
    "/Plone/%00",
    "/Plone/front-page%00.txt",
    "/%c0%af..%c0%af..%c0%af..%c0%afetc%c0%afpasswd",
    "/Plone/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/Plone/%ff%fe",
    "/Plone?q=%c0%af%ff",
    "/Plone\\..\\..\\..\\..\\etc\\passwd",
    "/Plone/%5c..%5c..%5c..%5c..%5cetc%5cpasswd",
    "/Plone/++resource++../../../../../../etc/passwd",
    "/Plone/++resource++%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/Plone/++plone++static/../../../../../../../etc/passwd",
    "/Plone/++plone++static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/Plone/++theme++barceloneta/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_path_serves_nothing_outside_zope(server, site_id, path):
    tracebacks = server.log_text().count("Traceback")
    raw = exchange(server.port, request("GET", path, ["Host: localhost", "Connection: close"]))
    status, headers, body = parse_response(raw)
    assert status < 500, (status, body[:300])
    assert status in (200, 301, 302, 400, 401, 403, 404), status
    assert b"root:x:0:0" not in body
    assert b"Traceback" not in body
    if status == 200:  # Zope's normal answer: a page of the site (acquisition), not a file
        assert b"plone" in body.lower()
        assert "zope" in headers.get("x-powered-by", "").lower()
    assert_responsive(server, site_id)
    assert server.log_text().count("Traceback") == tracebacks


# 5. Range on a Plone file download (plone.namedfile) and on an OFS File (Zope's multipart).

def _head(sock):
    """Read a response head from ``sock``: (status, headers, the body bytes read with it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the response head: {data[:200]!r}"
        data += chunk
    status, headers, _ = parse_response(data)
    return status, headers, data.partition(b"\r\n\r\n")[2]


def _range_get(server, path, range_header, read_body=False, auth=None):
    """(status, headers, body bytes received or None) of a GET with ``Range: range_header``."""
    extra = [f"Authorization: {auth}"] if auth else []
    with connect(server.port, timeout=60) as sock:
        sock.sendall(request("GET", path, ["Host: localhost", f"Range: {range_header}",
                                           "Connection: close", *extra]))
        status, headers, start = _head(sock)
        if not read_body:
            return status, headers, None
        received = len(start)
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return status, headers, received
            received += len(chunk)


@pytest.fixture(scope="module")
def download(big_file):
    return {"path": big_file["path"] + "/@@download/file", "size": big_file["size"]}


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=5-2", "items=0-5", "bytes=", "bytes=-",
                                    "bytes 0-5"])
def test_invalid_range_gets_the_whole_plone_file(server, site_id, download, header):
    status, headers, _ = _range_get(server, download["path"], header)
    assert status == 200
    assert int(headers["content-length"]) == download["size"]
    assert "content-range" not in headers
    assert_responsive(server, site_id)


def test_single_range_on_a_plone_file_gets_206(server, download):
    status, headers, received = _range_get(server, download["path"], "bytes=100-199", True)
    assert status == 206
    assert headers["content-range"] == f"bytes 100-199/{download['size']}"
    assert int(headers["content-length"]) == received == 100


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{end}", "bytes=-0",
                                    "bytes={size}-,{end}-"])
def test_unsatisfiable_range_on_a_plone_file_gets_416(server, site_id, download, header):
    size = download["size"]
    header = header.format(size=size, end=size + 1000)
    status, headers, received = _range_get(server, download["path"], header, True)
    assert status == 416
    assert headers["content-range"] == f"bytes */{size}"
    assert int(headers["content-length"]) == received == 0
    assert_responsive(server, site_id)


@pytest.mark.parametrize("header", ["bytes=0-99,50-149", "bytes=" + ",".join(["0-"] * 1000)],
                         ids=["overlapping", "1000-parts"])
def test_overlapping_and_many_ranges_on_a_plone_file_get_it_once(server, site_id, download, header):
    """plone.namedfile does not do multipart: any multi-range request gets the file once."""
    rss_before = server.rss()
    started = time.monotonic()
    status, headers, received = _range_get(server, download["path"], header, True)
    elapsed = time.monotonic() - started
    growth = server.rss() - rss_before
    print(f"\n{header[:30]}: {status}, {received} bytes in {elapsed:.2f} s, RSS +{growth / MB:.1f} MB")
    assert status == 200
    assert int(headers["content-length"]) == received == download["size"]
    assert growth < 50 * MB
    assert elapsed < 30
    assert_responsive(server, site_id)


OFS_FILE = "txzserver-ranges.bin"
OFS_SIZE = MB


@pytest.fixture(scope="module")
def ofs_file(server):
    """A 1 MB OFS.Image.File in the Zope root (Zope's own Range code, with multipart), made
    by a WebDAV PUT (a ZMI form post would need plone.protect's authenticator)."""
    response = httpx.put(server.url(f"/{OFS_FILE}"), auth=ADMIN, timeout=30,
                         content=bytes(range(256)) * (OFS_SIZE // 256),
                         headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text[:500]
    response = httpx.get(server.url(f"/{OFS_FILE}"), timeout=10)
    assert (response.status_code, len(response.content)) == (200, OFS_SIZE)
    return f"/{OFS_FILE}"


def test_two_ranges_on_an_ofs_file_get_a_multipart_answer(server, ofs_file):
    status, headers, received = _range_get(server, ofs_file, "bytes=0-9,100-109", True)
    assert status == 206
    assert headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(headers["content-length"]) == received < 1000


@pytest.mark.parametrize("header", ["bytes=" + ",".join(["0-"] * 1000),
                                    "bytes=" + ",".join(f"{n}-{n}" for n in range(0, 2000, 2)),
                                    "bytes=0-99,50-149"],
                         ids=["1000-overlapping", "1000-small", "two-overlapping"])
def test_many_overlapping_ranges_on_an_ofs_file_are_ignored(server, site_id, ofs_file, header):
    """RFC 9110 14.2: more than 32 ranges, or overlapping ones, get the File once (200)
    instead of a multipart answer of up to 1000 times its size (1 GB here)."""
    rss_before = server.rss()
    started = time.monotonic()
    status, headers, received = _range_get(server, ofs_file, header, True)
    elapsed = time.monotonic() - started
    growth = server.rss() - rss_before
    print(f"\n{header[:30]}...: {status}, {received} bytes in {elapsed:.2f} s,"
          f" RSS +{growth / MB:.1f} MB")
    assert status == 200
    assert int(headers["content-length"]) == received == OFS_SIZE
    assert growth < 50 * MB
    assert_responsive(server, site_id)
