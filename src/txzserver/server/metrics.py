"""Prometheus metrics on a listener of their own (``<metrics-server>``), and the readings of
the server's state: connections, requests in flight, the publisher pool and its admission.

The listener is a plain Twisted ``Site`` like the health listener: no Zope tree (the metrics
path is not reachable through the HTTP listeners), no share of max-connections, no access
log, answered on the reactor (the readings are counts the objects keep; a scrape never waits
for a publisher thread). ``ServerMetrics`` lives in the leaf ``txzserver.metrics``.
"""

from twisted.web import resource, server


class MetricsResource(resource.Resource):
    """``GET path``: the exposition; 404 for any other path, 405 for other methods."""

    isLeaf = True

    def __init__(self, metrics, path="/metrics"):
        super().__init__()
        self.metrics = metrics
        self.path = path.encode("ascii")

    def render(self, request):
        request.setHeader(b"cache-control", b"no-store")
        if request.path != self.path:
            return self._text(request, 404, f"not found: metrics are at {self.path.decode()}\n")
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return self._text(request, 405, "metrics are GET or HEAD\n")
        accept = request.getHeader(b"accept")
        content_type, body = self.metrics.expose(accept.decode("latin-1") if accept else None)
        request.setHeader(b"content-type", content_type.encode("latin-1"))
        return body

    def _text(self, request, code, text):
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return text.encode()


class MetricsSite(server.Site):
    """The metrics listener: Twisted's HTTP/1.1, no connection limit, no access log."""

    noisy = False
    displayTracebacks = False

    def __init__(self, metrics, path="/metrics", reactor=None, idle_timeout=30):
        super().__init__(MetricsResource(metrics, path), reactor=reactor)
        self.timeOut = idle_timeout

    def log(self, request):
        pass


def read_server(readings, pool, threads, counter, tracker, admission):
    """Register the readers of the server's own state on ``readings`` (``Readings``).

    ``pool``: the publisher ThreadPool (``threads`` of them); ``counter``: the process's
    ``ConnectionCounter``; ``tracker``: ``InFlight``; ``admission``: the ``Admission`` of the
    connections' publish queues.
    """
    readings.gauge("txzserver_http_connections",
                   "Open HTTP connections (WebSockets excluded), by protocol.",
                   counter.by_protocol, labels=("protocol",))
    readings.gauge("txzserver_http_connections_idle",
                   "Open HTTP connections between requests (HTTP/2: without open streams).",
                   lambda: counter.idle)
    readings.gauge("txzserver_http_connections_max", "max-connections.", lambda: counter.limit)
    readings.counter("txzserver_http_connections_evicted",
                     "Idle connections closed to make room for a newcomer (max-connections).",
                     lambda: counter.evicted)
    readings.counter("txzserver_http_connections_refused",
                     "Connections answered 503: max-connections reached, none idle.",
                     lambda: counter.refused)
    readings.gauge("txzserver_http_requests_in_flight",
                   "Requests from arrival to the end of their response (streaming included).",
                   lambda: tracker.count)
    readings.gauge("txzserver_publisher_threads", "Publisher threads (server-threads).",
                   lambda: threads)
    readings.gauge("txzserver_publisher_threads_busy",
                   "Publisher threads running a request, a task or a WebSocket handshake.",
                   lambda: len(pool.working))
    readings.gauge("txzserver_publisher_queued",
                   "Work waiting in the publisher pool for a free thread.",
                   lambda: pool.q.qsize())
    readings.gauge("txzserver_publisher_held",
                   "Requests held at their connection (max-publishing-per-connection).",
                   lambda: admission.held)
    readings.counter("txzserver_publisher_dropped",
                     "Requests dropped unpublished: their client left or reset before a thread"
                     " took them.", lambda: admission.dropped)
