"""Publish requests with Zope on a dedicated thread pool; send the response from the reactor.

Flow: ``ZopeResource.render`` (reactor) builds the environ and queues ``_run_app`` on the
pool. The worker calls the WSGI app (Zope's ``publish_module`` behind its exception
middleware) and returns a ``Response``: status, headers and either the body chunks it
collected or a file/stream iterator that the reactor streams by itself. Bodies that are
generic iterators are written from the worker with backpressure: it waits while the
client is not reading, and stops when the client is gone.
"""

import threading
from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.threads import blockingCallFromThread, deferToThreadPool
from twisted.logger import Logger
from twisted.web import resource, server
from zope.interface import implementer, providedBy

from .environ import SERVER_SOFTWARE, build_environ
from .streaming import BodyProducer, StreamBody

log = Logger()

#: Response headers that must appear once; when the app repeats one, the last value wins.
SINGLE_VALUED = frozenset({b"date", b"server", b"content-length", b"content-type", b"location",
                           b"last-modified", b"etag"})

#: Worker output kept in memory before it is handed to the reactor with backpressure.
BUFFERED_BODY_LIMIT = 1 << 20


class ClientGone(Exception):
    """The client disconnected while the worker was still producing the body."""


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
    if isinstance(result, StreamBody):
        return True
    try:
        from ZPublisher.Iterators import IUnboundStreamIterator
    except ImportError:  # pragma: no cover - Zope is always there in production
        return False
    return IUnboundStreamIterator in providedBy(result)


def _content_length(headers):
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return max(int(value), 0)
            except ValueError:
                return None
    return None


class ResponseChannel:
    """The per-request bridge between the worker thread and the Twisted request."""

    def __init__(self, reactor, request, chunk_size, instance_name=""):
        self.reactor = reactor
        self.instance_name = instance_name
        self.request = request
        self.chunk_size = chunk_size
        self.response = Response()
        self.gone = threading.Event()
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
        request.responseHeaders.removeHeader(b"content-type")
        request.responseHeaders.setRawHeaders(b"server", [SERVER_SOFTWARE.encode()])
        if self.instance_name:
            request.responseHeaders.setRawHeaders(b"x-txzserver-instance",
                                                  [self.instance_name.encode("utf-8")])
        grouped = {}
        for name, value in self.response.headers:
            grouped.setdefault(name.lower().encode("latin-1"), []).append(value.encode("latin-1"))
        for name, values in grouped.items():
            if name in SINGLE_VALUED and len(values) > 1:
                values = values[-1:]  # e.g. Zope sets Date in listHeaders and WebDAV again
            request.responseHeaders.setRawHeaders(name, values)

    def _write_and_wait(self, data):
        """Write ``data``; the Deferred fires once the transport wants more (backpressure).

        One observer stays registered for all writes of the response, so a pause the
        transport signalled is never missed between writes.
        """
        if self.gone.is_set():
            raise ClientGone()
        self._send_headers()
        if self._waiter is None:
            self._waiter = _DrainWaiter()
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
                _close_quietly(response.stream)
            return
        self._send_headers()
        for chunk in response.chunks:
            self.request.write(chunk)
        if response.stream is None or self.request.method == b"HEAD":
            if response.stream is not None:
                _close_quietly(response.stream)
            self._finish()
            return
        length = _content_length(response.headers)
        if length is not None and response.trailer:
            length = max(length - len(response.trailer), 0)
        BodyProducer(self.request, response.stream, length, self.chunk_size, self._stream_done).start()

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


@implementer(IPushProducer)
class _DrainWaiter:
    """Push producer that only observes the transport: paused while its buffer is full."""

    def __init__(self):
        self.paused = False
        self.stopped = False
        self._waiting = None

    def wait(self):
        """A Deferred firing when the transport is not paused (ClientGone once stopped)."""
        if self.stopped:
            return defer.fail(ClientGone())
        if not self.paused:
            return defer.succeed(None)
        if self._waiting is None:
            self._waiting = defer.Deferred()
        return self._waiting

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self):
        self.stopped = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(ClientGone())


def _close_quietly(body):
    try:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    except Exception:
        log.failure("closing a response body failed")


class ZopeResource(resource.Resource):
    """The single Twisted resource of a listener: every path goes to Zope.

    ``app`` is a WSGI application (Zope's publish_module in HTTPExceptionHandler);
    ``pool`` a started ThreadPool of server-threads workers; ``tracker`` counts requests
    in flight for graceful shutdown.
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
        channel = ResponseChannel(self.reactor, request, self.settings.stream_chunk_size,
                                  self.settings.instance_name)
        self.tracker.started()
        request.notifyFinish().addBoth(self.tracker.ended)
        request.notifyFinish().addErrback(channel.client_gone)
        d = deferToThreadPool(self.reactor, self.pool, self._run_app, environ, channel)
        d.addCallbacks(channel.deliver, channel.fail)
        d.addErrback(lambda f: log.failure("sending the response to {uri} failed", f, uri=request.uri))
        return server.NOT_DONE_YET

    def _run_app(self, environ, channel):
        """Worker thread: run the app; return a Response for the reactor to send."""
        result = self.app(environ, channel.start_response)
        channel.request.remote_user = environ.get("REMOTE_USER")
        response = channel.response
        if _is_stream(result):
            response.stream = result
            return response
        if isinstance(result, tuple) and result and isinstance(result[0], StreamBody):
            # RESPONSE.write() output spilled to a file (see zopeapp), then the body.
            response.stream = result[0]
            response.trailer = b"".join(result[1:])
            return response
        try:
            buffered = 0
            for chunk in result:
                if not chunk:
                    continue
                if channel.gone.is_set():
                    raise ClientGone()
                response.chunks.append(chunk)
                buffered += len(chunk)
                if buffered > BUFFERED_BODY_LIMIT:
                    chunks, response.chunks, buffered = response.chunks, [], 0
                    channel.write(b"".join(chunks))
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return response
