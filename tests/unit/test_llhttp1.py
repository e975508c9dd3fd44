"""txzserver.server.llhttp1, llhttp1parse and leanrequest: what the llhttp channel does on its own.

The HTTP/1.1 contract both channels keep is proven by the modules using the
``each_http1_parser`` fixture (test_http1, test_http1_hostile, test_request, ...); here:
pipelining while a response is pending, refusals owed after earlier answers, the request
line read by us, 100-continue, the response head, and no reference cycle left behind.
"""

import gc
import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from txzserver.server.leanrequest import canonical_name
from txzserver.server.llhttp1 import LLHTTP1Channel
from txzserver.server.llhttp1parse import explain_head

from .helpers import Hanging, connect, feed, make_site, parse_http1


def site_for(resource=None, **overrides):
    return make_site(resource, http1_parser="llhttp", **overrides)


def finish_first(resource):
    """Answer the oldest pending request (the next one may be rendered meanwhile)."""
    request = resource.pending.pop(0)
    request.write(b"done")
    request.finish()


def get(path, *headers):
    return b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, b"".join(h + b"\r\n" for h in headers))


def test_the_setting_chooses_the_channel():
    protocol, _ = connect(site_for())
    assert isinstance(protocol.channel, LLHTTP1Channel)


# Pipelining: one request answered at a time, in order; the socket is not read meanwhile

def test_pipelined_requests_wait_for_the_pending_response_in_order():
    resource = Hanging()
    site = site_for(resource)
    protocol, transport = connect(site)
    feed(protocol, get(b"/one") + get(b"/two") + get(b"/three"))
    assert [r.path for r in resource.pending] == [b"/one"]  # the others wait
    assert transport.producerState == "paused"  # and nothing more is read
    for expected in (b"/two", b"/three"):
        finish_first(resource)
        assert [r.path for r in resource.pending] == [expected]
    finish_first(resource)
    assert transport.producerState == "producing"
    answers = transport.value().split(b"HTTP/1.1 200 OK")[1:]
    assert len(answers) == 3 and all(a.endswith(b"4\r\ndone\r\n0\r\n\r\n") for a in answers)
    assert not transport.disconnecting


def test_a_refusal_after_a_pipelined_request_is_sent_after_its_answer():
    resource = Hanging()
    site = site_for(resource)
    protocol, transport = connect(site)
    feed(protocol, get(b"/one") + b"GET /two HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")
    assert transport.value() == b"" and not transport.disconnecting
    finish_first(resource)
    first, refusal = transport.value().split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK")
    assert refusal.startswith(b"400 Bad Request") and b"more than one Host header" in refusal
    assert transport.disconnecting
    assert resource.pending == []


def test_connection_close_ends_the_connection_and_drops_what_follows():
    resource = Hanging()
    protocol, transport = connect(site_for(resource))
    feed(protocol, get(b"/one", b"Connection: keep-alive, close") + get(b"/dropped"))
    finish_first(resource)
    code, headers, _ = parse_http1(transport.value())
    assert (code, headers[b"connection"]) == (200, b"close")
    assert transport.disconnecting
    assert resource.pending == [] and transport.value().count(b"HTTP/1.1") == 1


# The request line is ours: any method token, a raw non-ASCII target

class Echo(Resource):
    isLeaf = True

    def render(self, request):
        return b"%s %s %s" % (request.method, request.uri, request.clientproto)


@pytest.mark.parametrize("line", [b"FROBNICATE /x HTTP/1.1", b"PROPFIND /caf\xc3\xa9 HTTP/1.1",
                                  b"GET /a?b=%ZZ HTTP/1.0"])
def test_any_method_token_and_raw_target_reach_the_resource(line):
    protocol, transport = connect(site_for(Echo()))
    feed(protocol, line + b"\r\nHost: x\r\n\r\n", bytewise=True)
    code, _, body = parse_http1(transport.value())
    assert (code, body) == (200, line)


@pytest.mark.parametrize("line", [b"GET /", b"GET / HTTP/1.1 x", b"GET  / HTTP/1.1",
                                  b"GET /a\x01 HTTP/1.1", b"GET / HTTP/2.0", b"G(T / HTTP/1.1"])
def test_a_bad_request_line_is_refused(line):
    protocol, transport = connect(site_for(Echo()))
    feed(protocol, line + b"\r\nHost: x\r\n\r\n")
    code, _, body = parse_http1(transport.value())
    assert (code, body) == (400, b"malformed request\n")
    assert transport.disconnecting


def test_empty_lines_before_a_request_are_ignored():
    protocol, transport = connect(site_for(Echo()))
    feed(protocol, b"\r\n\r\n" + get(b"/"))
    assert parse_http1(transport.value())[:1] == (200,)


# 100-continue

def test_expect_100_continue_is_answered_before_the_body():
    protocol, transport = connect(site_for(Echo()))
    feed(protocol, b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    feed(protocol, b"abc")
    assert b"HTTP/1.1 200 OK" in transport.value()


def test_no_100_continue_for_a_body_refused_by_its_length():
    protocol, transport = connect(site_for(Echo(), max_request_body_size=2))
    feed(protocol, b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic eDp5\r\n"
                   b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert parse_http1(transport.value())[0] == 413
    assert b"100 Continue" not in transport.value()


# The response head

class Answer(Resource):
    isLeaf = True

    def __init__(self, code=200, headers=(), body=b"ok", length=True):
        super().__init__()
        self.code, self.headers, self.body, self.length = code, headers, body, length

    def render(self, request):
        request.setResponseCode(self.code)
        for name, value in self.headers:
            request.setHeader(name, value)
        if not self.length:
            request.write(self.body)
            request.finish()
            return server.NOT_DONE_YET
        return self.body


def test_a_body_of_unknown_length_is_chunked_and_head_gets_none():
    protocol, transport = connect(site_for(Answer(length=False)))
    feed(protocol, get(b"/"))
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head and body == b"2\r\nok\r\n0\r\n\r\n"
    transport.clear()
    feed(protocol, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().endswith(b"\r\n\r\n") and b"chunked" not in transport.value()


def test_no_body_for_204_and_http10_gets_no_chunks():
    protocol, transport = connect(site_for(Answer(code=204, length=False)))
    feed(protocol, get(b"/"))
    assert transport.value().endswith(b"\r\n\r\n") and b"ok" not in transport.value()
    protocol, transport = connect(site_for(Answer(length=False)))
    feed(protocol, b"GET / HTTP/1.0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.0 200 OK\r\n")
    assert transport.value().endswith(b"\r\n\r\nok") and transport.disconnecting


def test_a_line_break_in_a_response_field_cannot_inject_a_header():
    resource = Answer(headers=[(b"x-a", b"one\r\nSet-Cookie: evil=1")])
    protocol, transport = connect(site_for(resource))
    feed(protocol, get(b"/"))
    head = transport.value().partition(b"\r\n\r\n")[0]
    assert b"\r\nSet-Cookie" not in head
    assert b"X-A: one Set-Cookie: evil=1" in head


def test_names_are_written_as_twisted_writes_them():
    assert canonical_name(b"content-type") == b"Content-Type"
    assert canonical_name(b"x-txzserver-instance") == b"X-Txzserver-Instance"


# Reasons for heads llhttp refused

@pytest.mark.parametrize("head, answer", [
    (b"GET / HTTP/1.1\r\nHost: x\nX: 1\r\n", (400, "bare LF in request head")),
    (b"GET / HTTP/1.1\r\nHost: x\r\n  folded\r\n", (400, "obs-fold")),
    (b"GET / HTTP/1.1\r\nX-A: a\x01b\r\n", (400, "control character in the value of header x-a")),
    (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length", (400, "more than one Content")),
    (b"GET / HTTP/1.1\r\nHost : x\r\n", (400, "malformed request")),
])
def test_explain_head_finds_the_reason(head, answer):
    code, reason = explain_head(head, b"HTTP/1.1")
    assert (code, reason[:len(answer[1])]) == answer


def test_the_reason_waits_for_the_end_of_the_refused_line():
    protocol, transport = connect(site_for(Echo()))
    feed(protocol, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5")
    assert transport.value() == b""
    feed(protocol, b"\r\n\r\nabcde")
    code, _, body = parse_http1(transport.value())
    assert (code, body) == (400, b"Content-Length 5, 5 is not one decimal number (RFC 9112 6.3)\n")


# Timers and references

def test_idle_timeout_closes_an_idle_connection_without_an_answer():
    site = site_for(Echo(), idle_timeout=5, header_timeout=100)
    protocol, transport = connect(site)
    feed(protocol, get(b"/"))
    transport.clear()
    site.reactor.advance(4.9)
    assert not transport.disconnecting
    site.reactor.advance(0.2)
    assert transport.disconnecting and transport.value() == b""


def test_a_closed_connection_leaves_no_cycle():
    gc.collect()
    gc.disable()
    try:
        site = site_for(Hanging())
        protocol, transport = connect(site)
        feed(protocol, get(b"/"))
        request = site.resource.pending.pop()
        channel = weakref.ref(protocol.channel)
        protocol.connectionLost(Failure(ConnectionDone()))
        assert request.finished is False and request._disconnected
        del protocol, transport, request
        assert channel() is None  # freed by reference counting, no collector needed
    finally:
        gc.enable()


# Both parsers read the same requests from the same bytes, however they are cut

_token = st.sampled_from([b"GET", b"POST", b"PUT", b"PROPFIND", b"FROBNICATE"])
_path = st.text("abz09%/?=&.", max_size=20).map(lambda t: b"/" + t.encode())
_field = st.tuples(st.sampled_from([b"X-A", b"Accept", b"Cookie", b"Authorization"]),
                   st.text("abc =;/,-", min_size=1, max_size=20).map(
                       lambda t: t.strip().encode() or b"v"))


@st.composite
def _request(draw):
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked"] if body else ["none", "length"]))
    lines = [b"%s %s HTTP/1.1" % (draw(_token), draw(_path)), b"Host: x"]
    lines += [b"%s: %s" % field for field in draw(st.lists(_field, max_size=4))]
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
        encoded = body
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(1, len(body)), max_size=4)))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)]) if b > a]
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    else:
        encoded = b""
    return b"\r\n".join(lines) + b"\r\n\r\n" + encoded


def _answers(raw):
    """(status, body) of each Content-Length framed response in ``raw``."""
    answers = []
    while raw:
        code, headers, rest = parse_http1(raw)
        length = int(headers[b"content-length"])
        answers.append((code, rest[:length]))
        raw = rest[length:]
    return answers


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(_request(), min_size=1, max_size=4), st.lists(st.integers(0, 2000), max_size=6))
def test_both_parsers_read_the_same_requests_from_the_same_bytes(requests, cuts):
    from .helpers import Echo
    data = b"".join(requests)
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    seen = {}
    for parser in ("twisted", "llhttp"):
        protocol, transport = connect(make_site(Echo(), http1_parser=parser))
        for piece in pieces:
            feed(protocol, piece)
        seen[parser] = (_answers(transport.value()), transport.disconnecting)
    assert seen["llhttp"] == seen["twisted"]
    assert len(seen["llhttp"][0]) == len(requests)
