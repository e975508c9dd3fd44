"""txzserver.server.publisher: ZopeResource and PublishTask with tiny WSGI apps.

The worker thread is replaced by a pool that runs calls at once (or when the test says so)
and the reactor's callFromThread runs at once, as Twisted's own test_wsgi.py does.
Pull producers are driven by Twisted's cooperator, which is pointed at the test clock.
"""

import io

import pytest
from twisted.internet import _producer_helpers, task
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest as TwistedDummyRequest

from txzserver.server import publisher
from txzserver.server.environ import SERVER_SOFTWARE, ProxyTrust
from txzserver.server.publisher import PublishTask, Response, ZopeResource, _content_length
from txzserver.server.shutdown import InFlight
from txzserver.server.request import ZopeRequest
from txzserver.server.streaming import StreamBody
from txzserver.transfer import ClientGone
from tests.support.threadpools import ManualThreadPool, SynchronousThreadPool

from .helpers import H2Client, ThreadsReactor, connect, feed, make_settings, make_site, responses, spin

pytestmark = pytest.mark.usefixtures("each_http1_parser")



class DummyRequest(TwistedDummyRequest):
    """Twisted's test request with the response-header method of our requests."""

    set_response_headers = ZopeRequest.set_response_headers


@pytest.fixture
def reactor(monkeypatch):
    reactor = ThreadsReactor()
    cooperator = task.Cooperator(scheduler=lambda work: reactor.callLater(0, work))
    monkeypatch.setattr(_producer_helpers, "cooperate", cooperator.cooperate)
    return reactor


class Blob(io.BytesIO):
    """A file body recording, in ``closed``, its read position each time it is closed."""

    def __init__(self, data, closed):
        super().__init__(data)
        self.closes = closed

    def close(self):
        if not self.closed:
            self.closes.append(self.tell())
        super().close()


def serve(reactor, app, pool=None, h2c=False, trust=(), secure=False, **overrides):
    settings = make_settings(**overrides)
    tracker = InFlight()
    resource = ZopeResource(reactor, pool or SynchronousThreadPool(), app, settings,
                            ProxyTrust(trust), secure, tracker)
    site = make_site(resource, settings=settings, h2c=h2c, reactor=reactor)
    protocol, transport = connect(site)
    return resource, protocol, transport


def http1(reactor, protocol, transport, request):
    feed(protocol, request)
    spin(reactor, 50)
    return parse_response(transport.value())


def parse_response(data):
    """(code, reason, {name: [values]}, body) of one HTTP/1.1 response, chunked or not."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    _, code, reason = lines[0].split(b" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if headers.get(b"transfer-encoding") == [b"chunked"]:
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2:]
    else:
        body = rest
    return int(code), reason, headers, body


GET = b"GET /plone/page?x=1 HTTP/1.1\r\nHost: example.org\r\n\r\n"


def hello_app(environ, start_response):
    body = b"%s %s" % (environ["PATH_INFO"].encode(), environ["QUERY_STRING"].encode())
    start_response("201 Created", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                                   ("X-Multi", "1"), ("x-multi", "2")])
    return [body[:3], b"", body[3:]]


# ZopeResource over HTTP/1.1

def test_status_headers_and_body(reactor):
    resource, protocol, transport = serve(reactor, hello_app)
    code, reason, headers, body = http1(reactor, protocol, transport, GET)
    assert (code, reason) == (201, b"Created")
    assert headers[b"content-type"] == [b"text/plain"]
    assert headers[b"x-multi"] == [b"1", b"2"]
    assert headers[b"server"] == [SERVER_SOFTWARE.encode()]
    assert body == b"/plone/page x=1"
    assert resource.tracker.count == 0
    assert not transport.disconnecting


def test_body_without_length_is_chunked(reactor):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        return iter([b"<p>", b"one", b"</p>"])
    resource, protocol, transport = serve(reactor, app)
    code, _, headers, body = http1(reactor, protocol, transport, GET)
    assert code == 200
    assert body == b"<p>one</p>"


def test_request_body_and_environ_reach_the_app(reactor):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        seen["body"] = environ["wsgi.input"].read()
        environ["REMOTE_USER"] = "admin"
        start_response("200 OK", [("Content-Length", "0")])
        return []
    resource, protocol, transport = serve(reactor, app)
    http1(reactor, protocol, transport,
          b"PUT /doc HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")
    assert seen["body"] == b"hello"
    assert seen["CONTENT_LENGTH"] == "5"
    assert seen["REQUEST_METHOD"] == "PUT"
    assert seen["wsgi.file_wrapper"] is StreamBody
    assert seen["SERVER_PORT"] == "8080"


def test_remote_user_reaches_the_access_log(reactor):
    def app(environ, start_response):
        environ["REMOTE_USER"] = "admin"
        start_response("200 OK", [("Content-Length", "0")])
        return []
    resource, protocol, transport = serve(reactor, app)
    seen = []
    resource_site = protocol.site
    resource_site.log = lambda request: seen.append(request.remote_user)
    http1(reactor, protocol, transport, GET)
    assert seen == ["admin"]


def test_write_callable_and_buffered_chunks_keep_order(reactor, monkeypatch):
    monkeypatch.setattr(publisher, "BUFFERED_BODY_LIMIT", 10)

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-")
        return [b"a" * 6, b"b" * 6, b"c" * 6, b"-end"]
    resource, protocol, transport = serve(reactor, app)
    code, _, _, body = http1(reactor, protocol, transport, GET)
    assert code == 200
    assert body == b"written-" + b"a" * 6 + b"b" * 6 + b"c" * 6 + b"-end"


def test_stream_body_is_streamed_and_capped(reactor):
    data = bytes(range(256)) * 40  # 10240 bytes; the app announces fewer
    closed = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", "5000")])
        return environ["wsgi.file_wrapper"](Blob(data, closed), 1024)
    resource, protocol, transport = serve(reactor, app, stream_chunk_size=1024)
    code, _, headers, body = http1(reactor, protocol, transport, GET)
    assert code == 200
    assert headers[b"content-length"] == [b"5000"]
    assert body == data[:5000]
    assert closed == [5000]
    assert resource.tracker.count == 0
    assert not transport.disconnecting
    # The connection is reusable after a streamed response.
    transport.clear()
    code, _, _, body = http1(reactor, protocol, transport, GET)
    assert (code, len(body)) == (200, 5000)


def test_short_stream_closes_the_connection(reactor):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        return StreamBody(io.BytesIO(b"only ten.."))
    resource, protocol, transport = serve(reactor, app)
    code, _, _, body = http1(reactor, protocol, transport, GET)
    assert body == b"only ten.."
    assert transport.disconnecting


def test_head_does_not_send_the_stream(reactor):
    closed = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        return StreamBody(Blob(b"data", closed))
    resource, protocol, transport = serve(reactor, app)
    feed(protocol, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    spin(reactor)
    assert transport.value().endswith(b"\r\n\r\n")
    assert b"data" not in transport.value()
    assert closed == [0]  # closed once, nothing read


def test_app_exception_gives_500(reactor):
    def app(environ, start_response):
        raise RuntimeError("boom")
    resource, protocol, transport = serve(reactor, app)
    code, _, headers, body = http1(reactor, protocol, transport, GET)
    assert code == 500
    assert headers[b"content-type"] == [b"text/plain; charset=utf-8"]
    assert b"could not publish" in body
    assert b"boom" not in body
    assert resource.tracker.count == 0


def test_exception_while_iterating_gives_500_and_closes_the_result(reactor):
    closed = []

    class Body:
        def __iter__(self):
            yield b"partial"
            raise ValueError("half way")

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()
    resource, protocol, transport = serve(reactor, app)
    code, _, _, body = http1(reactor, protocol, transport, GET)
    assert code == 500
    assert b"partial" not in body
    assert closed == [True]


def test_exception_after_headers_were_sent_drops_the_connection(reactor):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"started")
        raise RuntimeError("late")
    resource, protocol, transport = serve(reactor, app)
    feed(protocol, GET)
    spin(reactor)
    assert transport.value().startswith(b"HTTP/1.1 200 OK")
    assert b"started" in transport.value()
    assert transport.disconnecting


def test_bad_status_gives_500(reactor):
    def app(environ, start_response):
        start_response("OK", [])
        return [b"x"]
    resource, protocol, transport = serve(reactor, app)
    assert http1(reactor, protocol, transport, GET)[0] == 500


def test_client_disconnect_sets_gone_and_stops_the_worker(reactor):
    pool = ManualThreadPool()
    iterated = []
    lost = []

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            for i in range(3):
                iterated.append(i)
                if i == 0:
                    lost.append(protocol.connectionLost(Failure(ConnectionDone())))
                yield b"chunk"
        return body()
    resource, protocol, transport = serve(reactor, app, pool=pool)
    feed(protocol, GET)
    (_, _, (environ, task), _), = pool.calls
    assert resource.tracker.count == 1
    assert not task.gone.is_set()

    pool.run()
    assert lost and task.gone.is_set()
    assert resource.tracker.count == 0
    assert iterated == [0]
    assert transport.value() == b""


def test_client_gone_before_a_worker_takes_the_request_publishes_nothing(reactor):
    pool = ManualThreadPool()
    called = []

    def app(environ, start_response):
        called.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"x"]
    resource, protocol, transport = serve(reactor, app, pool=pool)
    feed(protocol, GET)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert resource.tracker.count == 0
    pool.run()
    assert called == []  # Zope never saw it
    assert transport.value() == b""


def test_client_gone_before_delivery_closes_the_stream(reactor):
    pool = ManualThreadPool()
    closed = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        protocol.connectionLost(Failure(ConnectionDone()))  # gone while Zope publishes
        return StreamBody(Blob(b"data", closed))
    resource, protocol, transport = serve(reactor, app, pool=pool)
    feed(protocol, GET)
    pool.run()
    assert closed == [0]  # closed once, nothing read
    assert transport.value() == b""


def test_write_after_client_gone_raises():
    channel = PublishTask(ThreadsReactor(), DummyRequest([]), make_settings(stream_chunk_size=1024))
    channel.client_gone(Failure(ConnectionDone()))
    with pytest.raises(ClientGone):
        channel.write(b"late")


# ZopeResource over HTTP/2

def test_http2_response_and_stream(reactor):
    data = b"0123456789" * 700

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/blob":
            start_response("200 OK", [("Content-Length", "6000")])
            return StreamBody(io.BytesIO(data))
        return hello_app(environ, start_response)
    resource, protocol, transport = serve(reactor, app, h2c=True, stream_chunk_size=1024)
    client = H2Client(protocol, transport, reactor)
    client.request(1, path="/page")
    client.request(3, path="/blob")
    client.flush()
    spin(reactor, 50)
    answers = responses(client.events())
    spin(reactor, 50)
    for sid, answer in responses(client.events()).items():
        answers[sid]["body"] += answer["body"]
        answers[sid]["ended"] |= answer["ended"]
    assert answers[1]["status"] == 201
    assert answers[1]["body"] == b"/page "
    assert [v for k, v in answers[1]["header_list"] if k == b"x-multi"] == [b"1", b"2"]
    assert answers[1]["headers"][b"server"] == SERVER_SOFTWARE.encode()
    assert answers[3]["status"] == 200
    assert answers[3]["body"] == data[:6000]
    assert answers[3]["ended"]
    assert resource.tracker.count == 0


def odd_headers_app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2"), ("X-Upper-Case", "kept"), (":status", "404"),
                              ("", "empty"), ("Connection", "keep-alive"), ("Upgrade", "h2c")])
    return [b"ok"]


def test_app_headers_without_a_field_name_are_dropped(reactor):
    resource, protocol, transport = serve(reactor, odd_headers_app)
    code, _, headers, body = http1(reactor, protocol, transport, GET)
    assert (code, body) == (200, b"ok")
    assert headers[b"x-upper-case"] == [b"kept"]
    assert b":status" not in headers and b"" not in headers


def test_h2_responses_carry_only_valid_lower_case_fields(reactor):
    """h2's outbound validation is off (http2.H2Channel): names are still lower-cased,
    connection-specific fields stripped, pseudo and empty names dropped before h2 sees them,
    and a strict client (h2, validating what it receives) accepts the response."""
    resource, protocol, transport = serve(reactor, odd_headers_app, h2c=True)
    client = H2Client(protocol, transport, reactor)
    client.request(1, path="/odd")
    client.flush()
    spin(reactor, 50)
    answer = responses(client.events())[1]
    assert (answer["status"], answer["body"], answer["ended"]) == (200, b"ok", True)
    names = [name for name, _ in answer["header_list"]]
    assert b"x-upper-case" in names
    assert names.count(b":status") == 1 and names[0] == b":status"
    assert not {b"", b"connection", b"upgrade"} & set(names)
    assert all(name == name.lower() for name in names)


def test_rapid_reset_publishes_nothing_and_holds_at_most_a_share_of_the_pool(reactor):
    """HEADERS + RST_STREAM pairs: the pool sees at most the connection's share, Zope nothing."""
    import h2.errors
    pool = ManualThreadPool()
    called = []

    def app(environ, start_response):
        called.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"x"]
    resource, protocol, transport = serve(reactor, app, pool=pool, h2c=True,
                                          max_publishing_per_connection=2)
    client = H2Client(protocol, transport, reactor)
    for n in range(50):
        client.request(1 + 2 * n, path=f"/r{n}")
        client.conn.reset_stream(1 + 2 * n, error_code=h2.errors.ErrorCodes.CANCEL)
    client.flush()
    assert len(pool.calls) == 2  # the others wait on the connection, not in the pool
    while pool.calls:
        pool.run()
    assert called == []
    assert protocol.connection.publish_queue.dropped == 48
    assert resource.tracker.count == 0


# PublishTask pieces

def test_start_response_rules():
    channel = PublishTask(ThreadsReactor(), DummyRequest([]), make_settings(stream_chunk_size=1024))
    with pytest.raises(ValueError):
        channel.start_response(200, [])
    write = channel.start_response("404 Not Found", [("A", "b")])
    assert write == channel.write
    assert channel.response.status == "404 Not Found"
    # Replacing the status with exc_info is allowed until the headers are sent.
    channel.start_response("500 Error", [], exc_info=(ValueError, ValueError("x"), None))
    channel.headers_sent = True
    with pytest.raises(KeyError):
        try:
            raise KeyError("sent")
        except KeyError as exc:
            channel.start_response("500 Error", [], exc_info=(KeyError, exc, exc.__traceback__))


def test_deliver_streams_into_a_dummy_request():
    request = DummyRequest([])
    channel = PublishTask(ThreadsReactor(), request, make_settings(stream_chunk_size=1024))
    body = io.BytesIO(b"abcdefghij")
    channel.deliver(Response("200 OK", [("Content-Length", "6")], [], stream=StreamBody(body)))
    assert b"".join(request.written) == b"abcdef"
    assert request.finished
    assert body.closed
    assert channel.finished


def test_deliver_header_names_and_reason():
    request = DummyRequest([])
    channel = PublishTask(ThreadsReactor(), request, make_settings(stream_chunk_size=1024))
    channel.response = Response("418 I'm a teapot", [("X-Thing", "caf\u00e9")], [])
    channel.deliver(Response("418 I'm a teapot", [], [b"tea"]))
    assert request.responseCode == 418
    assert request.responseHeaders.getRawHeaders(b"x-thing") == ["caf\u00e9".encode("latin-1")]
    assert request.written == [b"tea"]


@pytest.mark.parametrize("headers, length", [
    ([("Content-Length", "12")], 12), ([("content-length", "-3")], 0),
    ([("Content-Length", "x")], None), ([], None),
])
def test_content_length(headers, length):
    assert _content_length(headers) == length


def test_repeated_single_valued_headers_are_sent_once():
    """Zope's WSGIResponse adds a Date header; WebDAV code may set another one."""
    request = DummyRequest([b""])
    channel = PublishTask(reactor=None, request=request, settings=make_settings())
    channel.start_response("200 OK", [("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
                                      ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                      ("Date", "Tue, 02 Jan 2024 00:00:00 GMT")])
    channel._send_headers()
    assert request.responseHeaders.getRawHeaders(b"date") == [b"Tue, 02 Jan 2024 00:00:00 GMT"]
    assert request.responseHeaders.getRawHeaders(b"set-cookie") == [b"a=1", b"b=2"]
