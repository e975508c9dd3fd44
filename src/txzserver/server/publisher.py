"""Publish requests with Zope on a dedicated thread pool; send the response from the reactor.

Flow: ``ZopeResource.render`` (reactor) builds the environ and hands a ``PublishTask`` to
its connection's ``PublishQueue`` (``Connection.publish_queue``), which queues ``_run_app``
on the pool when the connection has fewer than its share of requests there (h2 multiplexing
must not let one client fill the pool). A task whose client went away before a worker took
it is dropped unpublished.

The worker calls the WSGI app (Zope's ``publish_module`` behind its exception middleware)
and returns a ``Response``: status, headers and either the body chunks it collected or a
file/stream iterator that the reactor streams by itself. Bodies that are generic iterators
are written from the worker with backpressure: it waits while the client is not reading,
and stops when the client is gone.
"""

from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import Logger
from twisted.web import resource, server
from ZPublisher.Iterators import IUnboundStreamIterator
from zope.interface import providedBy

from ..transfer import ClientGone, PauseObserver, close_body
from .environ import SERVER_SOFTWARE, build_environ
from .handback import Handback
from .streaming import StreamBody, stream_body

log = Logger()

#: Response headers that must appear once; when the app repeats one, the last value wins.
SINGLE_VALUED = frozenset({b"date", b"server", b"content-length", b"content-type", b"location",
                           b"last-modified", b"etag"})

SERVER_SOFTWARE_BYTES = SERVER_SOFTWARE.encode()

#: Worker output kept in memory before it is handed to the reactor with backpressure.
BUFFERED_BODY_LIMIT = 1 << 20


@dataclass
class Response:
    """What the worker thread hands back to the reactor."""

    status: str = "500 Internal Server Error"
    headers: list = field(default_factory=list)
    chunks: list = field(default_factory=list)
    stream: object = None
    trailer: bytes = b""
    started: bool = False


def _is_stream(result):
    """True for bodies the reactor can stream without the worker: files, Zope stream iterators."""
    return isinstance(result, StreamBody) or IUnboundStreamIterator in providedBy(result)


def _content_length(headers):
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return max(int(value), 0)
            except ValueError:
                return None
    return None


class GoneFlag:
    """Set by the reactor when the client went away, read by the worker: a plain attribute
    (reads and writes of one are atomic under the GIL); a threading.Event, which nobody
    waits on, cost a Condition and a lock per request."""

    __slots__ = ("_set",)

    def __init__(self):
        self._set = False

    def set(self):
        self._set = True

    def is_set(self):
        return self._set


#: Header names as the app writes them -> lower-case bytes (a server sees few names).
_NAMES = {}


def _field_name(name):
    try:
        return _NAMES[name]
    except KeyError:
        value = name.lower().encode("latin-1")
        if len(_NAMES) < 1024:
            _NAMES[name] = value
        return value


def _fire(d, ok, result):
    """Reactor thread: fire ``d`` with what the worker returned (``ok``) or raised."""
    if ok:
        d.callback(result)
    else:
        d.errback(result)


class PublishTask:
    """One request's trip through the publisher: the worker's side (WSGI ``start_response``
    and ``write``) and the reactor's (headers, body, streaming, errors)."""

    def __init__(self, reactor, request, settings, extra_headers=None):
        self.reactor = reactor
        self.settings = settings
        #: {name: [values]} added to the response (Alt-Svc), the app's own win
        self.extra_headers = extra_headers
        self.request = request
        self.response = Response()
        self.gone = GoneFlag()
        self.headers_sent = False
        self.finished = False
        self._waiter = None

    # Worker thread

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None and self.headers_sent:
            raise exc_info[1].with_traceback(exc_info[2])
        if not isinstance(status, str) or not status[:3].isdigit():
            raise ValueError(f"bad WSGI status {status!r}")
        self.response.status = status
        self.response.headers = list(headers)
        self.response.started = True
        return self.write

    def write(self, data):
        """WSGI ``write``, and the flush of large iterated bodies: waits for the client."""
        if self.gone.is_set():
            raise ClientGone()
        if data:
            blockingCallFromThread(self.reactor, self._write_and_wait, data)

    # Reactor thread

    def _send_headers(self):
        if self.headers_sent:
            return
        self.headers_sent = True
        code, _, reason = self.response.status.partition(" ")
        request = self.request
        request.setResponseCode(int(code), reason.encode("latin-1") or None)
        grouped = {b"server": [SERVER_SOFTWARE_BYTES]}
        if self.extra_headers:
            grouped.update(self.extra_headers)
        if self.settings.instance_name:
            grouped[b"x-txzserver-instance"] = [self.settings.instance_name.encode("utf-8")]
        for name, value in self.response.headers:
            name = _field_name(name)
            if not name or name[0] == 0x3a:  # "" or ":status": no field name (RFC 9110 5.1)
                continue  # and HTTP/2 sends its own pseudo-headers unchecked (http2.H2Channel)
            values = grouped.get(name)
            if values is None:
                grouped[name] = [value.encode("latin-1")]
            elif name in SINGLE_VALUED:  # e.g. Zope sets Date in listHeaders and WebDAV again
                values[:] = [value.encode("latin-1")]
            else:
                values.append(value.encode("latin-1"))
        request.set_response_headers(grouped)

    def _write_and_wait(self, data):
        """Write ``data``; the Deferred fires once the transport wants more (backpressure).

        One observer stays registered for all writes of the response, so a pause the
        transport signalled is never missed between writes.
        """
        if self.gone.is_set():
            raise ClientGone()
        self._send_headers()
        if self._waiter is None:
            self._waiter = PauseObserver()
            self.request.registerProducer(self._waiter, True)
        self.request.write(data)
        return self._waiter.wait()

    def _release_waiter(self):
        if self._waiter is not None:
            self._waiter = None
            if not self.gone.is_set():
                self.request.unregisterProducer()

    def deliver(self, response):
        self._release_waiter()
        if self.gone.is_set() or self.finished:
            if response.stream is not None:
                close_body(response.stream)
            return
        self._send_headers()
        for chunk in response.chunks:
            self.request.write(chunk)
        if response.stream is None or self.request.method == b"HEAD":
            if response.stream is not None:
                close_body(response.stream)
            self._finish()
            return
        length = _content_length(response.headers)
        if length is not None and response.trailer:
            length = max(length - len(response.trailer), 0)
        stream_body(self.request, response.stream, length, self.settings, self.reactor,
                    self._stream_done)

    def _stream_done(self, producer, error):
        self.request.unregisterProducer()
        if producer.stopped:
            self.gone.set()
        if error or (producer.remaining not in (None, 0)):
            if not self.gone.is_set():
                log.warn("streamed body ended after {sent} bytes, {left} short of Content-Length;"
                         " closing the connection", sent=producer.sent, left=producer.remaining)
                self.request.loseConnection()
            self.finished = True
            return
        if self.response.trailer:
            self.request.write(self.response.trailer)
        self._finish()

    def fail(self, failure):
        self._release_waiter()
        if failure.check(ClientGone) or self.gone.is_set():
            return
        log.failure("publishing {uri} failed", failure, uri=self.request.uri)
        if self.headers_sent:
            self.request.loseConnection()
            self.finished = True
            return
        self.response = Response("500 Internal Server Error",
                                 [("Content-Type", "text/plain; charset=utf-8")])
        self._send_headers()
        self.request.write(b"Internal Server Error: the server could not publish this request.\n")
        self._finish()

    def client_gone(self, reason):
        self.gone.set()

    def _finish(self):
        if not self.finished:
            self.finished = True
            self.request.finish()


class ZopeResource(resource.Resource):
    """The single Twisted resource of a listener: every path goes to Zope.

    ``app`` is a WSGI application (Zope's publish_module in HTTPExceptionHandler);
    ``pool`` a started ThreadPool of server-threads workers; ``tracker`` counts requests
    in flight for graceful shutdown; ``websocket`` (optional) takes the handshakes.
    """

    isLeaf = True

    def __init__(self, reactor, pool, app, settings, trust, secure, tracker, websocket=None):
        super().__init__()
        self.reactor = reactor
        self.pool = pool
        self.app = app
        self.settings = settings
        self.trust = trust
        self.secure = secure
        self.tracker = tracker
        self.websocket = websocket
        #: The Alt-Svc value announcing HTTP/3 (set by the listener once its UDP port is
        #: bound); None without ``http3 on``.
        self.alt_svc = None
        #: Responses come back from the workers through it (one reactor wake-up per batch).
        self.handback = Handback(reactor)

    def render(self, request):
        body = request.content
        body_length = body.seek(0, 2)
        body.seek(0)
        environ = build_environ(request, body, body_length, secure=self.secure, trust=self.trust)
        if self.websocket is not None:
            handled = self.websocket.handle(request, environ)
            if handled is not None:
                return handled
        environ["wsgi.file_wrapper"] = StreamBody
        extra = None
        if self.alt_svc is not None and request.clientproto != b"HTTP/3":
            extra = {b"alt-svc": [self.alt_svc]}
        task = PublishTask(self.reactor, request, self.settings, extra)
        self.tracker.started()
        request.notifyFinish().addBoth(self._ended, task)
        queue = request.protocol.connection.publish_queue  # one per connection, h2 or not
        queue.submit(lambda: self._publish(environ, task), task.gone.is_set)
        return server.NOT_DONE_YET

    def _ended(self, result, task):
        """The response is finished (None) or the client gone (a Failure)."""
        self.tracker.ended()
        if result is not None:
            task.client_gone(result)

    def _publish(self, environ, task):
        """Queue ``task`` on the pool; the Deferred fires once its response is handed over."""
        d = Deferred()
        d.addCallbacks(task.deliver, task.fail)
        d.addErrback(lambda f: log.failure("sending the response to {uri} failed", f,
                                           uri=task.request.uri))
        self.pool.callInThreadWithCallback(
            lambda ok, result: self.handback.put(_fire, d, ok, result),
            self._run_app, environ, task)
        return d

    def _run_app(self, environ, task):
        """Worker thread: run the app; return a Response for the reactor to send."""
        if task.gone.is_set():
            raise ClientGone()  # reset or disconnected while queued: publish nothing
        result = self.app(environ, task.start_response)
        task.request.remote_user = environ.get("REMOTE_USER")
        response = task.response
        if _is_stream(result):
            response.stream = result
            return response
        if isinstance(result, tuple) and result and isinstance(result[0], StreamBody):
            # RESPONSE.write() output spilled to a file (see txzserver.zope.publish), then the body.
            response.stream = result[0]
            response.trailer = b"".join(result[1:])
            return response
        try:
            buffered = 0
            for chunk in result:
                if not chunk:
                    continue
                if task.gone.is_set():
                    raise ClientGone()
                response.chunks.append(chunk)
                buffered += len(chunk)
                if buffered > BUFFERED_BODY_LIMIT:
                    chunks, response.chunks, buffered = response.chunks, [], 0
                    task.write(b"".join(chunks))
        finally:
            close_body(result, quietly=False)
        return response

