"""The limit every server is measured against: Zope's WSGI app called in-process, no HTTP.

    python -m tests.bench.inprocess ZOPE_CONF SECONDS WARMUP PATH [PATH ...]
    python -m tests.bench.inprocess ZOPE_CONF --threads ROUNDS SECONDS PATH [PATH ...]

Zope is configured from ZOPE_CONF (server sections ignored) and the app is the object
txzserver publishes, as for waitress and granian. One thread calls it with a plain GET
environ (what a server would build for ``GET PATH`` from 127.0.0.1) and reads the whole body,
one request after the other: WARMUP seconds, then SECONDS measured per path. Prints one JSON
object {path: {requests_per_s, requests, p50_s, p99_s, status}} on its last line.

With ``--threads``: what a second thread calling the app at the same time does to it (the GIL
lets one run Python at a time). For each path, ROUNDS alternating rounds of SECONDS each of one
thread, two threads at once, and two threads at a 20 ms switch interval; prints
{path: {configuration: [{requests_per_s, cpu_ms_per_request}, ...]}}.
"""

import io
import json
import os
import subprocess
import sys
import threading
import time

from tests.bench.clients import percentile
from tests.bench.servers import alternating
from tests.support.instance import ROOT, copy_instance_data, new_instance


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


#: configuration name -> (threads calling the app at once, switch interval in seconds or
#: None for Python's own)
CONCURRENCY = {"1 thread": (1, None), "2 threads": (2, None), "2 threads, 20 ms": (2, 0.02)}


def measure_concurrent(app, path, seconds, threads):
    """``threads`` threads calling the app for ``path`` one request after the other each, at
    once, for ``seconds``: requests/s of them all and the process's CPU per request."""
    counts = [0] * threads
    end = time.monotonic() + seconds

    def work(index):
        while time.monotonic() < end:
            call(app, path)
            counts[index] += 1

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    cpu, begin = time.process_time(), time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed, cpu, requests = time.monotonic() - begin, time.process_time() - cpu, sum(counts)
    return {"requests_per_s": round(requests / elapsed, 1),
            "cpu_ms_per_request": round(cpu / max(requests, 1) * 1000, 3)}


def compare_threads(app, paths, seconds, rounds):
    """CONCURRENCY's configurations in alternating order, ``rounds`` times per path."""
    default = sys.getswitchinterval()
    found = {path: {name: [] for name in CONCURRENCY} for path in paths}
    try:
        for path in paths:
            for name, (threads, interval) in CONCURRENCY.items():  # warm each connection
                sys.setswitchinterval(interval or default)
                measure_concurrent(app, path, 1.0, threads)
            for round_ in range(rounds):
                for name in alternating(CONCURRENCY, round_):
                    threads, interval = CONCURRENCY[name]
                    sys.setswitchinterval(interval or default)
                    found[path][name].append(measure_concurrent(app, path, seconds, threads))
    finally:
        sys.setswitchinterval(default)
    return found


def in_subprocess(directory, template, arguments, timeout):
    """Run this module in a process of its own (its Zope, its ZODB connections) on a fresh copy
    of ``template`` in ``directory``, with ``arguments`` after the configuration file, as main
    takes them; the JSON it printed last."""
    conf = new_instance(directory)
    copy_instance_data(template, directory)
    argv = [sys.executable, "-m", "tests.bench.inprocess", str(conf), *arguments]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"tests.bench.inprocess: exit {done.returncode}: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _app(conf):
    from txzserver.config import load
    from txzserver.zope.startup import configure_logging, start_zope

    opts, settings = load(conf)
    configure_logging(opts.configroot)
    return start_zope(opts, settings)


def main(argv):
    if argv[1] == "--threads":
        conf, rounds, seconds, paths = argv[0], int(argv[2]), float(argv[3]), argv[4:]
        print(json.dumps(compare_threads(_app(conf), paths, seconds, rounds)), flush=True)
        return
    conf, seconds, warmup, paths = argv[0], float(argv[1]), float(argv[2]), argv[3:]
    app = _app(conf)
    print(json.dumps({path: measure(app, path, seconds, warmup) for path in paths}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
