"""The reactor's CPU per small HTTP/1.1 request, socketless, for each http1-parser.

    python -m tests.bench.reactor_cost [REQUESTS] [RUNS] [--profile]

A real ``ZopeSite`` and ``ZopeResource`` (environ, publish task, connection queue, handback,
response, access log to /dev/null, metrics) on a ``StringTransport``, one keep-alive
connection, a "pool" that runs the app at once in the same thread, and an app answering
like Plone's ``@@ok`` (2-byte body, ten response headers). Per parser: the thread CPU time
of REQUESTS requests (default 2000), best of RUNS runs (default 7), in µs per request; both
parsers alternate in the same process. With ``--profile``, cProfile's top functions of one
run of each (their shares, for the stages).
"""

import cProfile
import logging
import os
import pstats
import sys
import time

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from txzserver.config.datatypes import Listener
from txzserver.config.settings import ServerSettings
from txzserver.metrics import ServerMetrics
from txzserver.server.connection import ConnectionCounter
from txzserver.server.environ import ProxyTrust
from txzserver.server.publisher import ZopeResource
from txzserver.server.shutdown import InFlight
from txzserver.server.site import ZopeSite

from tests.support.threadpools import SynchronousThreadPool

PARSERS = ("twisted", "llhttp")
REQUEST = (b"GET /Plone/@@ok HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n"
           b"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n")
#: What Zope answers for /Plone/@@ok (names and sizes as seen on the bench's site).
OK_HEADERS = [
    ("Content-Length", "2"), ("Content-Type", "text/plain;charset=utf-8"),
    ("X-Powered-By", "Zope (www.zope.dev), Python (www.python.org)"),
    ("Date", "Mon, 07 Dec 2026 01:00:00 GMT"), ("Expires", "Sat, 1 Jan 2000 00:00:00 GMT"),
    ("Cache-Control", "max-age=0, must-revalidate, private"), ("X-Frame-Options", "SAMEORIGIN"),
    ("X-Content-Type-Options", "nosniff"), ("Content-Language", "en"), ("Vary", "Accept"),
]


class Reactor(MemoryReactorClock):
    """callFromThread runs at once: the "workers" are this thread."""

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


def app(environ, start_response):
    start_response("200 OK", OK_HEADERS)
    return [b"OK"]


def connection(parser):
    """A connected protocol of a site built as app.py builds one, and its transport."""
    settings = ServerSettings(listeners=(Listener("http", "127.0.0.1", 8080),),
                              http1_parser=parser, threads=2)
    reactor = Reactor()
    resource = ZopeResource(reactor, SynchronousThreadPool(), app, settings, ProxyTrust(()), secure=False,
                            tracker=InFlight())
    site = ZopeSite(resource, settings, ConnectionCounter(settings.max_connections),
                    h2c=True, reactor=reactor, metrics=ServerMetrics())
    transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
                                peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    peer = IPv4Address("TCP", "127.0.0.1", 40000)
    protocol = site.buildProtocol(peer)
    protocol.makeConnection(transport)
    return protocol, transport, reactor, site


def run(parser, requests):
    """CPU seconds of the reactor thread for ``requests`` requests on one connection."""
    protocol, transport, reactor, site = connection(parser)
    protocol.dataReceived(REQUEST)  # warm up, and check the answer
    answer = transport.value()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nOK"), answer
    transport.clear()
    started = time.thread_time()
    for _ in range(requests):
        protocol.dataReceived(REQUEST)
        transport.clear()
    elapsed = time.thread_time() - started
    site.access_log.flush()
    return elapsed


def main(argv):
    profile = "--profile" in argv
    numbers = [int(a) for a in argv if not a.startswith("--")]
    requests = numbers[0] if numbers else 2000
    runs = numbers[1] if len(numbers) > 1 else 7
    access = logging.getLogger("access")
    access.setLevel(logging.INFO)
    access.propagate = False
    with open(os.devnull, "w") as sink:
        access.addHandler(logging.StreamHandler(sink))
        best = {parser: float("inf") for parser in PARSERS}
        for _ in range(runs):
            for parser in PARSERS:
                best[parser] = min(best[parser], run(parser, requests))
        print(f"reactor CPU per request ({requests} requests on one connection, best of {runs};"
              f" load {os.getloadavg()[0]:.1f}):")
        for parser in PARSERS:
            print(f"  {parser:8s} {best[parser] / requests * 1e6:7.1f} µs")
        print(f"  llhttp / twisted: {best['llhttp'] / best['twisted']:.2f}")
        if profile:
            for parser in PARSERS:
                profiler = cProfile.Profile()
                profiler.runcall(run, parser, requests)
                print(f"\n--- {parser}: top functions by own time")
                pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main(sys.argv[1:])
