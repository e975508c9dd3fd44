"""Hostile HTTP/1.1 on raw sockets, hostile paths and Range headers against a real Plone site.

Every case asserts the exact answer; that the front page, requested throughout by a probe in
a process of its own, answered 200 and was never starved during the case, with a page after it;
and, from Zope's own IPubStart events (``tests.support.published``), what reached Zope: a
refused request never, an accepted one once, and never a second request made from the bytes of
one (request smuggling, RFC 9112 6.3 and 11.2). Each request carries a marker in its query that
the count looks for. The last test judges all the probe's pages against those it measured
before the first case.

The server has one publisher thread and an idle-timeout of IDLE seconds (a stalled body is
answered 408 within it).
"""

import socket
import time

import httpx
import pytest

from tests.support.clients import connect, exchange, parse_response, read_head, read_until_closed
from tests.support.counting import start_counting_server
from tests.support.instance import ADMIN
from tests.robustness import ROWS
from tests.support.latency import CEILING, PageProbe
from tests.support.published import LINE, published
from tests.support.results import record
from tests.support.slow import RssSampler, timed_get

SMUGGLING = ROWS["smuggling"].figures
BAD, TOO_LARGE = SMUGGLING["status"], SMUGGLING["too_large"]  # a smuggling attempt's answers
BAD_HEAD = ROWS["header_syntax"].figures["status"]  # a malformed head's answer
PIPELINED = ROWS["pipelining"].figures["pipelined"]
PATHS = ROWS["path_tricks"].figures
RANGES = ROWS["ranges"].figures
IDLE = ROWS["slow_body"].figures["idle_s"]  # idle-timeout of the server, seconds
MB = 1024 * 1024
BODY = ROWS["slow_body"].figures["body_mb"] * MB  # the declared length of the slow bodies


@pytest.fixture(scope="module")
def server(servers, site_id):
    server = start_counting_server(servers, "http1-hostile", extra=f"idle-timeout {IDLE}s",
                                   https=False)
    # The first rendering of the front page compiles templates (~1.5 s): do it before.
    assert timed_get(server.url(f"/{site_id}"), timeout=30)[1] == 200
    return server


@pytest.fixture(scope="module")
def probe(server, site_id):
    """The front page from a process of its own, every 0.5 s (the server has one publisher
    thread: a faster probe would hold it from the cases), with its baseline."""
    with PageProbe(server.url(f"/{site_id}"), interval=0.5) as probe:
        probe.baseline(20)
        yield probe


class Pages:
    """The probe's pages from the start of one test."""

    def __init__(self, probe):
        self.probe, self.start = probe, probe.mark()

    def served(self):
        """Wait for a page that started now; then every page since the test began must have
        answered 200 within the starvation ceiling. With one publisher thread that page was
        published after anything the case queued, so Zope's counts are complete after it."""
        self.probe.wait_samples(1, after=self.probe.mark(), timeout=CEILING * 2 + 30)
        bad = [s for s in self.probe.samples() if s.t >= self.start
               and (s.status != 200 or s.seconds > CEILING)]
        assert not bad, f"front pages failed or starved (ceiling {CEILING} s): {bad[:5]}"


@pytest.fixture
def pages(probe):
    return Pages(probe)


def zope_saw(server, marker):
    """How many requests whose URL contains ``marker`` Zope has published."""
    return published(server.event_log.read_text(errors="replace"), marker)


def zope_order(server, marker):
    """The query keys of the publishes whose URL contains ``marker``, in the order Zope began them."""
    return [url.partition("?")[2].partition("=")[0]
            for _, url in LINE.findall(server.event_log.read_text(errors="replace")) if marker in url]


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
                          b"0\r\n\r\n"), BAD, b"more than one Content-Length or Transfer-Encoding"),
    "te-and-cl": (smuggle("te-and-cl", ["Transfer-Encoding: chunked", "Content-Length: 5"],
                          b"0\r\n\r\n"), BAD, b"more than one Content-Length or Transfer-Encoding"),
    "two-lengths": (smuggle("two-lengths", ["Content-Length: 0", "Content-Length: 5"], b"abcde"),
                    BAD, b"more than one Content-Length"),
    "length-list-same": (smuggle("length-list-same", ["Content-Length: 5, 5"], b"abcde"),
                         BAD, b"Content-Length 5, 5 is not one decimal number"),
    "length-list-differ": (smuggle("length-list-differ", ["Content-Length: 5, 6"], b"abcde"),
                           BAD, b"Content-Length 5, 6 is not one decimal number"),
    "length-negative": (smuggle("length-negative", ["Content-Length: -1"], b""),
                        BAD, b"Content-Length -1 is not one decimal number"),
    "length-plus": (smuggle("length-plus", ["Content-Length: +5"], b"abcde"),
                    BAD, b"Content-Length +5 is not one decimal number"),
    "length-hex": (smuggle("length-hex", ["Content-Length: 0x5"], b"abcde"),
                   BAD, b"Content-Length 0x5 is not one decimal number"),
    "length-overflow": (smuggle("length-overflow", ["Content-Length: " + "9" * 30], b"abc"),
                        TOO_LARGE, b"Content-Length of 30 digits is too large"),
    # Python's int() refuses more than 4,300 digits: such a length used to end in a traceback.
    "length-digits": (smuggle("length-digits", ["Content-Length: " + "9" * SMUGGLING["digits"]], b""),
                      TOO_LARGE,
                      b"Content-Length of %d digits is too large" % SMUGGLING["digits"]),
    "te-chunked-identity": (smuggle("te-chunked-identity", ["Transfer-Encoding: chunked, identity"],
                                    b"0\r\n\r\n"), BAD, b"only chunked is accepted"),
    "te-identity": (smuggle("te-identity", ["Transfer-Encoding: identity"], b""),
                    BAD, b"Transfer-Encoding identity: only chunked is accepted"),
    "te-identity-and-cl": (smuggle("te-identity-and-cl", ["Transfer-Encoding: identity",
                                                          "Content-Length: 3"], b"abc"),
                           BAD, b"only chunked is accepted"),
    "te-xchunked": (smuggle("te-xchunked", ["Transfer-Encoding: xchunked"], b"0\r\n\r\n"),
                    BAD, b"Transfer-Encoding xchunked: only chunked is accepted"),
    "te-http10": (smuggle("te-http10", ["Transfer-Encoding: chunked"], b"3\r\nabc\r\n0\r\n\r\n",
                          version="HTTP/1.0"), BAD, b"Transfer-Encoding in an HTTP/1.0 request"),
    "te-twice": (smuggle("te-twice", ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
                         b"0\r\n\r\n"), BAD, b"more than one Content-Length or Transfer-Encoding"),
    "chunk-size-not-hex": (smuggle("chunk-size-not-hex", ["Transfer-Encoding: chunked"],
                                   b"zz\r\nabc\r\n0\r\n\r\n"), BAD, b"malformed request"),
    "chunk-size-negative": (smuggle("chunk-size-negative", ["Transfer-Encoding: chunked"],
                                    b"-3\r\nabc\r\n0\r\n\r\n"), BAD, b"malformed request"),
    "chunk-size-0x": (smuggle("chunk-size-0x", ["Transfer-Encoding: chunked"],
                              b"0x3\r\nabc\r\n0\r\n\r\n"), BAD, b"malformed request"),
    "chunk-extension-huge": (smuggle("chunk-extension-huge", ["Transfer-Encoding: chunked"],
                                     b"3;x=" + b"y" * 2000 + b"\r\nabc\r\n0\r\n\r\n"),
                             BAD, b"malformed request"),
    "chunk-without-crlf": (smuggle("chunk-without-crlf", ["Transfer-Encoding: chunked"],
                                   b"3\r\nabc0\r\n\r\n"), BAD, b"malformed request"),
    "obs-fold": (request("GET", "/Plone?case-obs-fold=1", ["Host: localhost", "X-Folded: a",
                                                           " b"]), BAD_HEAD, b"obs-fold"),
    "bare-lf": (b"GET /Plone?case-bare-lf=1 HTTP/1.1\nHost: localhost\n\n", 400, b"bare LF"),
    "nul-in-value": (request("GET", "/Plone?case-nul-in-value=1", ["Host: localhost",
                                                                   "X-A: a\x00b"]),
                     BAD_HEAD, b"control character in the value of header x-a"),
    "cr-in-value": (request("GET", "/Plone?case-cr-in-value=1", ["Host: localhost", "X-A: a\rb"]),
                    BAD_HEAD, b"control character in the value of header x-a"),
    "ctl-in-value": (request("GET", "/Plone?case-ctl-in-value=1", ["Host: localhost",
                                                                   "X-A: a\x01b"]),
                     BAD_HEAD, b"control character in the value of header x-a"),
    "del-in-value": (request("GET", "/Plone?case-del-in-value=1", ["Host: localhost",
                                                                   "X-A: a\x7fb"]),
                     BAD_HEAD, b"control character in the value of header x-a"),
    "space-before-colon": (request("GET", "/Plone?case-space-before-colon=1",
                                   ["Host : localhost"]), BAD_HEAD, b"malformed request"),
    "no-host": (request("GET", "/Plone?case-no-host=1"), BAD_HEAD, b"without a Host header"),
    "two-hosts": (request("GET", "/Plone?case-two-hosts=1", ["Host: localhost", "Host: evil"]),
                  BAD_HEAD, b"more than one Host header"),
    "connect": (request("CONNECT", "localhost:80", ["Host: localhost:80"]),
                BAD_HEAD, b"CONNECT: this server is not a proxy"),
    "authority-form-get": (request("GET", "localhost:80", ["Host: localhost"]),
                           BAD_HEAD, b"request-target is neither a path nor an http(s) URL"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_request_is_answered_once_and_reaches_nothing(server, pages, case):
    data, code, reason = REFUSED[case]
    raw = exchange(server.port, data)
    status, headers, body = parse_response(raw)
    assert (status, headers.get("connection")) == (code, "close"), raw[:600]
    assert reason in body
    assert len(split_responses(raw)) == 1, raw
    pages.served()
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
    "pipelined": (b"".join(_get(f"pipelined-{n}") for n in range(PIPELINED - 1))
                  + _get(f"pipelined-{PIPELINED - 1}", "Connection: close"),
                  [f"pipelined-{n}" for n in range(PIPELINED)]),
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
def test_accepted_requests_are_answered_once_each_in_order(server, pages, case):
    data, markers = ACCEPTED[case]
    raw = exchange(server.port, data)
    answers = split_responses(raw)
    assert [status for status, _, _ in answers] == [200] * len(markers), raw[:500]
    for _, _, body in answers:
        assert b"plone" in body.lower()
    pages.served()
    # Zope began each once, in the order sent, and nothing else of this case.
    assert zope_order(server, case) == markers


def test_absolute_form_target_takes_its_host_from_the_uri(server, pages):
    """RFC 9112 3.2.2: accepted, and the URI's host wins over the Host header."""
    data = request("GET", "http://example.org/Plone?case-absolute=1",
                   ["Host: localhost", "Connection: close"])
    status, _, body = parse_response(exchange(server.port, data))
    assert status == 200
    assert b"http://example.org/Plone" in body
    assert b"//localhost" not in body
    pages.served()
    assert zope_saw(server, "case-absolute=") == 1


def test_chunk_size_overflow_is_refused_at_once(server, pages):
    """A chunk of 2**96 - 1 bytes cannot be framed: llhttp refuses the size line (400), and
    nothing of it (the hidden GET included) reaches Zope. Twisted's parser (http1-parser
    twisted) read it as chunk data until idle-timeout, then answered 408."""
    data = smuggle("chunk-overflow", ["Transfer-Encoding: chunked"],
                   b"ffffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n")
    with connect(server.port) as sock:
        sock.sendall(data)
        raw = read_until_closed(sock, timeout=IDLE + 10)
    status, headers, body = parse_response(raw)
    assert (status, headers["connection"]) == (BAD, "close")
    assert body == b"malformed request\n"
    assert len(split_responses(raw)) == 1, raw
    pages.served()
    assert zope_saw(server, "case-chunk-overflow=") == 0
    assert zope_saw(server, "smuggled-chunk-overflow=") == 0


# 3. Slow bodies: a declared 1 MB body that stalls is cut at idle-timeout with 408; one that
#    trickles holds its connection (not a publisher thread) while pages are served.

def _slow_post(marker):
    return request("POST", f"/Plone?{marker}=1", [
        "Host: localhost", "Content-Type: application/octet-stream", f"Content-Length: {BODY}",
        "Connection: close"])


def test_stalled_body_gets_408_at_idle_timeout(server, pages):
    with connect(server.port) as sock:
        sock.sendall(_slow_post("case-stalled") + b"x" * 1024)
        started = time.monotonic()
        pages.served()
        raw = read_until_closed(sock, timeout=IDLE + 10)
        elapsed = time.monotonic() - started
    status, headers, body = parse_response(raw)
    assert (status, headers["connection"]) == (408, "close")
    assert body == b"request body incomplete: nothing received for %d seconds (idle-timeout)\n" % IDLE
    assert IDLE - 1 < elapsed < IDLE + CEILING  # not before idle-timeout; after it, unless starved
    pages.served()
    assert zope_saw(server, "case-stalled=") == 0


def test_trickled_body_holds_only_its_connection(server, probe, pages):
    """A byte every IDLE/4 seconds keeps idle-timeout from firing (there is no body timeout
    setting yet): the connection stays open for 2 x IDLE, the probe's pages meanwhile keep the
    pace of its baseline (the one publisher thread is free), and Zope sees nothing until the
    body is complete."""
    with connect(server.port) as sock:
        sock.sendall(_slow_post("case-trickle"))
        start = probe.mark()
        sent = 0
        while time.monotonic() - start < 2 * IDLE:
            sock.sendall(b"x")
            sent += 1
            time.sleep(IDLE / 4)
        end = probe.mark()
        sock.settimeout(0.1)
        with pytest.raises(socket.timeout):
            sock.recv(100)  # no answer, and not closed
        pages.served()
        assert zope_saw(server, "case-trickle=") == 0
        verdict = probe.verdict("while a body trickled", start, end, min_samples=5)
        record("http1_hostile", "trickled_body", **verdict.figures())
        verdict.check()
        sock.sendall(b"x" * (BODY - sent))
        status, _, _ = parse_response(read_until_closed(sock, timeout=30))
    assert status == 200
    pages.served()
    assert zope_saw(server, "case-trickle=") == 1


# 4. Paths: nothing outside Zope is served, never a 500: Zope's own 404, or a 400 before Zope
#    for a path that is not UTF-8.

NOT_FOUND = PATHS["zope_status"]
NOT_UTF8 = PATHS["non_utf8_status"]

#: path: (status, how many times Zope publishes it)
HOSTILE_PATHS = {
    "/../../../../../../etc/passwd": (NOT_FOUND, 1),
    "/Plone/../../../../../../etc/passwd": (NOT_FOUND, 1),
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd": (NOT_FOUND, 1),
    "/Plone/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd": (NOT_FOUND, 1),
    "/Plone/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd": (NOT_FOUND, 1),
    "/Plone%00/x": (NOT_FOUND, 1),
    "/Plone/%00": (NOT_FOUND, 1),
    "/Plone/front-page%00.txt": (NOT_FOUND, 1),
    "/%c0%af..%c0%af..%c0%af..%c0%afetc%c0%afpasswd": (NOT_UTF8, 0),
    "/Plone/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd": (NOT_UTF8, 0),
    "/Plone/%ff%fe": (NOT_UTF8, 0),
    "/Plone?q=%c0%af%ff": (200, 1),  # the query is Zope's to read: the site's page
    "/Plone\\..\\..\\..\\..\\etc\\passwd": (NOT_FOUND, 1),
    "/Plone/%5c..%5c..%5c..%5c..%5cetc%5cpasswd": (NOT_FOUND, 1),
    "/Plone/++resource++../../../../../../etc/passwd": (NOT_FOUND, 1),
    "/Plone/++resource++%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd": (NOT_FOUND, 1),
    "/Plone/++plone++static/../../../../../../../etc/passwd": (NOT_FOUND, 1),
    "/Plone/++plone++static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd": (NOT_FOUND, 1),
    "/Plone/++theme++barceloneta/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd": (NOT_FOUND, 1),
}


@pytest.mark.parametrize("path", list(HOSTILE_PATHS))
def test_hostile_path_serves_nothing_outside_zope(server, pages, path):
    code, publishes = HOSTILE_PATHS[path]
    tracebacks = server.log_text().count("Traceback")
    marker = f"case-path-{list(HOSTILE_PATHS).index(path)}"
    target = path + ("&" if "?" in path else "?") + f"{marker}=1"
    raw = exchange(server.port, request("GET", target, ["Host: localhost", "Connection: close"]))
    status, headers, body = parse_response(raw)
    assert status == code, (status, body[:300])
    assert b"root:x:0:0" not in body
    assert b"Traceback" not in body
    if status == 200:  # Zope's normal answer: a page of the site, not a file
        assert b"plone" in body.lower()
        assert "zope" in headers.get("x-powered-by", "").lower()
    pages.served()
    assert zope_saw(server, f"{marker}=") == publishes
    assert server.log_text().count("Traceback") == tracebacks


# 5. Range on a Plone file download (plone.namedfile) and on an OFS File (Zope's multipart).

def _head(sock):
    """Read a response head from ``sock``: (status, headers, the body bytes read with it)."""
    head, rest = read_head(sock)
    status, headers, _ = parse_response(head + b"\r\n\r\n")
    return status, headers, rest


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
def test_invalid_range_gets_the_whole_plone_file(server, pages, download, header):
    status, headers, _ = _range_get(server, download["path"], header)
    assert status == 200
    assert int(headers["content-length"]) == download["size"]
    assert "content-range" not in headers
    pages.served()


def test_single_range_on_a_plone_file_gets_206(server, download):
    status, headers, received = _range_get(server, download["path"], "bytes=100-199", True)
    assert status == 206
    assert headers["content-range"] == f"bytes 100-199/{download['size']}"
    assert int(headers["content-length"]) == received == 100


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{end}", "bytes=-0",
                                    "bytes={size}-,{end}-"])
def test_unsatisfiable_range_on_a_plone_file_gets_416(server, pages, download, header):
    size = download["size"]
    header = header.format(size=size, end=size + 1000)
    status, headers, received = _range_get(server, download["path"], header, True)
    assert status == 416
    assert headers["content-range"] == f"bytes */{size}"
    assert int(headers["content-length"]) == received == 0
    pages.served()


PARTS = "bytes=" + ",".join(["0-"] * RANGES["parts"])


def _range_get_peak(server, path, header):
    """``_range_get`` reading the body, with the server's RSS growth at its peak meanwhile.
    The bound (RANGES["rss_mb"]) is far below what an amplified answer takes: a multipart of
    every part would be RANGES["parts"] times the file (1 GB for the 1 MB OFS File)."""
    with RssSampler(server.rss, interval=0.1) as rss:
        status, headers, received = _range_get(server, path, header, True)
    growth = rss.peak - rss.samples[0]
    print(f"\n{header[:30]}: {status}, {received} bytes, RSS +{growth / MB:.1f} MB")
    assert growth < RANGES["rss_mb"] * MB, f"server RSS grew by {growth / MB:.1f} MB"
    return status, headers, received


@pytest.mark.parametrize("header", ["bytes=0-99,50-149", PARTS], ids=["overlapping", "many-parts"])
def test_overlapping_and_many_ranges_on_a_plone_file_get_it_once(server, pages, download, header):
    """plone.namedfile does not do multipart: any multi-range request gets the file once."""
    status, headers, received = _range_get_peak(server, download["path"], header)
    assert status == 200
    assert int(headers["content-length"]) == received == download["size"]
    pages.served()


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


@pytest.mark.parametrize("header", [PARTS,
                                    "bytes=" + ",".join(f"{n}-{n}" for n in range(0, 2000, 2)),
                                    "bytes=0-99,50-149"],
                         ids=["many-overlapping", "1000-small", "two-overlapping"])
def test_many_overlapping_ranges_on_an_ofs_file_are_ignored(server, pages, ofs_file, header):
    """RFC 9110 14.2: more than 32 ranges, or overlapping ones, get the File once (200)
    instead of a multipart answer of up to RANGES["parts"] times its size."""
    status, headers, received = _range_get_peak(server, ofs_file, header)
    assert status == 200
    assert int(headers["content-length"]) == received == OFS_SIZE
    pages.served()


def test_pages_kept_their_pace_through_the_module(probe):
    """All the probe's pages since its baseline, judged against it (run last: it sees every case)."""
    verdict = probe.verdict("during the hostile requests", probe.first_mark, min_samples=20)
    record("http1_hostile", "pages_through_the_module", **verdict.figures())
    print(verdict.summary())
    verdict.check()
