"""The server's Prometheus metrics, kept in a registry of its own (never the global one).

A leaf module: it imports nothing of txzserver, so server/, bus/ and zope/ may all feed it
(tools/check_imports.py lists it in LEAVES). Two kinds of figures:

- what happens, counted at one place each: a finished request (``request_done``, called by
  the access log hook, where status, protocol, duration and size are known);
- state the objects keep anyway (open connections, busy threads, subscribers, ZODB caches),
  read when Prometheus scrapes (``Readings``): nothing is updated on the request path for them.
  The process's own figures (``process_*``: CPU, memory, open files) come from
  prometheus_client's ProcessCollector, which reads /proc at scrape time.

One ``ServerMetrics`` per server, so tests and several servers in one process do not clash.
Reactor thread only, except ``expose``, which any thread may call.
"""

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("txzserver.metrics")

#: Seconds from a request's first line (HTTP/2: its HEADERS) to its last byte handed over.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    float("inf"))


class Readings:
    """A Prometheus collector of figures read at scrape time from callables.

    ``read()`` returns a number, or ``{label values tuple: number}`` when ``labels`` are
    given, or None (no sample now: e.g. no ZODB yet). A reader that raises is logged and
    left out of that scrape; the others are still answered.
    """

    def __init__(self):
        self._readers = []

    def gauge(self, name, documentation, read, labels=()):
        self._readers.append((GaugeMetricFamily, name, documentation, tuple(labels), read))

    def counter(self, name, documentation, read, labels=()):
        """A counter kept by its object (an int that only grows); ``name`` without _total."""
        self._readers.append((CounterMetricFamily, name, documentation, tuple(labels), read))

    def collect(self):
        for family_type, name, documentation, labels, read in self._readers:
            try:
                value = read()
            except Exception:
                log.exception("metric %s could not be read", name)
                continue
            if value is None:
                continue
            family = family_type(name, documentation, labels=labels)
            if labels:
                for key, number in sorted(value.items()):
                    family.add_metric(list(key), number)
            else:
                family.add_metric([], value)
            yield family


class ServerMetrics:
    """The registry of one server, its request counters and its ``readings``."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "txzserver_http_requests", "Requests answered, by protocol and status code.",
            ["protocol", "status"], registry=self.registry)
        self.duration = Histogram(
            "txzserver_http_request_duration_seconds",
            "Time from a request's first line (HTTP/2: HEADERS) to its response's last byte.",
            ["protocol"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.sent = Counter(
            "txzserver_http_response_body_bytes", "Response body bytes sent, by protocol.",
            ["protocol"], registry=self.registry)
        self.spooled = Counter(
            "txzserver_http_request_spooled_bytes",
            "Request body bytes spooled to temporary files (request-spool-threshold).",
            registry=self.registry)
        self._children = {}
        self.readings = Readings()
        self.registry.register(self.readings)
        ProcessCollector(registry=self.registry)

    def request_done(self, protocol, status, seconds, sent=0, spooled=0):
        """A request was answered (the access log hook; reactor thread).

        The labelled children are looked up once per (protocol, status): prometheus_client's
        ``labels()`` checks and locks on every call, a third of this method's cost.
        """
        try:
            requests, duration, sent_bytes = self._children[protocol, status]
        except KeyError:
            requests, duration, sent_bytes = self._children[protocol, status] = (
                self.requests.labels(protocol, str(status)), self.duration.labels(protocol),
                self.sent.labels(protocol))
        requests.inc()
        duration.observe(seconds if seconds > 0.0 else 0.0)
        if sent:
            sent_bytes.inc(sent)
        if spooled:
            self.spooled.inc(spooled)

    def expose(self, accept=None):
        """(content type, body) of a scrape: OpenMetrics when ``accept`` asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return content_type, encoder(self.registry)
