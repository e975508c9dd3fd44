"""The limit every server is measured against: Zope's WSGI app called in-process, no HTTP.

    python -m tests.bench.inprocess ZOPE_CONF SECONDS WARMUP PATH [PATH ...]

Zope is configured from ZOPE_CONF (server sections ignored) and the app is the object
txzserver publishes, as for waitress and granian. One thread calls it with a plain GET
environ (what a server would build for ``GET PATH`` from 127.0.0.1) and reads the whole body,
one request after the other: WARMUP seconds, then SECONDS measured per path. Prints one JSON
object {path: {requests_per_s, requests, p50_s, p99_s, status}} on its last line.
"""

import io
import json
import sys
import time

from tests.bench.clients import percentile


def environ_for(path):
    return {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8080", "HTTP_USER_AGENT": "txzserver-bench",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def call(app, path):
    """One request: the status line's code and the body's length."""
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = int(status[:3])
        return lambda data: None

    result = app(environ_for(path), start_response)
    try:
        size = sum(len(chunk) for chunk in result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen.get("status"), size


def measure(app, path, seconds, warmup):
    end = time.monotonic() + warmup
    while time.monotonic() < end:
        call(app, path)
    times, statuses = [], set()
    begin = time.monotonic()
    while time.monotonic() - begin < seconds:
        started = time.monotonic()
        status, _ = call(app, path)
        times.append(time.monotonic() - started)
        statuses.add(status)
    elapsed = time.monotonic() - begin
    return {"requests_per_s": round(len(times) / elapsed, 1), "requests": len(times),
            "p50_s": percentile(times, 50), "p99_s": percentile(times, 99),
            "status": sorted(s for s in statuses if s is not None)}


def main(argv):
    conf, seconds, warmup, paths = argv[0], float(argv[1]), float(argv[2]), argv[3:]
    from txzserver.config import load
    from txzserver.zope.startup import configure_logging, start_zope

    opts, settings = load(conf)
    configure_logging(opts.configroot)
    app = start_zope(opts, settings)
    print(json.dumps({path: measure(app, path, seconds, warmup) for path in paths}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
