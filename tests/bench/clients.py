"""Load generators and probes for the benchmark (all on 127.0.0.1).

Slow readers are tests.support.slow.SlowReader; its stop() shuts the socket down, so a reader
whose request waits in a starved server's queue ends too instead of being served later and
taking a thread from the next phase.
"""

import re
import shutil
import subprocess
import threading
import time

import httpx

from tests.support.server import rss_bytes
from tests.support.slow import SlowReader, timed_get

MB = 1024 * 1024


def start_readers(port, path, count, rate, wait=8.0):
    """Start ``count`` readers; wait up to ``wait`` s for their bodies (a starved server
    may never answer some of them) and then until the answered ones have 1 MiB each."""
    readers = [SlowReader(port, path, rate=rate, timeout=120) for _ in range(count)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + wait
    for reader in readers:
        reader.started_body.wait(max(deadline - time.monotonic(), 0))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(r.received > MB for r in readers if r.started_body.is_set()):
            break
        time.sleep(0.1)
    return readers


def stop_readers(readers):
    for reader in readers:
        reader.stop()
    for reader in readers:
        reader.join(10)
    return [r for r in readers if r.is_alive()]


class RssSampler(threading.Thread):
    """Peak VmRSS of ``pid``, sampled every ``interval`` s until stopped."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.before = rss_bytes(pid)
        self.peak = self.before
        self._stopping = threading.Event()

    def run(self):
        while not self._stopping.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return
            self._stopping.wait(self.interval)

    def stop(self):
        self._stopping.set()
        self.join(5)
        return self.peak


def percentile(values, p):
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def probe_sequential(url, seconds, timeout=10.0):
    """GET ``url`` one request after the other for ``seconds``; latency summary.

    A request that times out counts with its elapsed time (about ``timeout``): a lower bound.
    """
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        begin = time.monotonic()
        try:
            elapsed, status = timed_get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            elapsed, status = time.monotonic() - begin, f"error: {exc!r}"
        samples.append((elapsed, status))
    latencies = [s for s, _ in samples]
    return {
        "requests": len(samples),
        "ok": sum(1 for _, status in samples if status == 200),
        "timeouts": sum(1 for _, status in samples if status is None),
        "other": sorted({str(status) for _, status in samples if status not in (200, None)}),
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "max_s": max(latencies) if latencies else None,
        "latencies_s": [round(s, 4) for s in latencies],
    }


def wait_responsive(url, limit=60.0):
    """Seconds until ``url`` answers 200 within 2 s (None if not within ``limit``)."""
    begin = time.monotonic()
    while time.monotonic() - begin < limit:
        try:
            elapsed, status = timed_get(url, timeout=10)
        except httpx.HTTPError:
            elapsed, status = 0, None
            time.sleep(0.5)
        if status == 200 and elapsed < 2:
            return time.monotonic() - begin
    return None


def download(url, size, http2=False, timeout=120.0):
    """Download ``url`` once at full speed; seconds, MB/s (MiB) and the protocol used."""
    begin = time.monotonic()
    received = 0
    with httpx.Client(http1=not http2, http2=http2, timeout=timeout) as client:
        with client.stream("GET", url) as response:
            protocol = response.http_version
            status = response.status_code
            for chunk in response.iter_raw(1 << 20):
                received += len(chunk)
    seconds = time.monotonic() - begin
    return {"status": status, "protocol": protocol, "bytes": received, "complete": received == size,
            "seconds": round(seconds, 3), "mib_per_s": round(received / MB / seconds, 1)}


WRK = shutil.which("wrk")
_TIME = re.compile(r"([\d.]+)(us|ms|s|m)$")
_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text):
    match = _TIME.match(text)
    return float(match.group(1)) * _SCALE[match.group(2)] if match else None


def rate_wrk(url, seconds, connections):
    """Requests/s and p50 latency of ``url`` with wrk (keep-alive, HTTP/1.1)."""
    argv = [WRK, "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    result = {"tool": "wrk", "argv": " ".join(argv[1:]), "output": out}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["requests_per_s"] = float(m.group(1))
    if m := re.search(r"^\s+50%\s+(\S+)", out, re.M):
        p50 = _seconds(m.group(1))
        result["p50_s"] = None if p50 is None else round(p50, 5)
    if m := re.search(r"(\d+) requests in", out):
        result["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    return result


def rate_python(url, seconds, connections):
    """Requests/s and p50 latency with ``connections`` keep-alive httpx clients in threads."""
    latencies, errors = [], []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def work():
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < end:
                begin = time.monotonic()
                try:
                    ok = client.get(url).status_code == 200
                except httpx.HTTPError as exc:
                    ok = False
                    errors.append(repr(exc))
                with lock:
                    if ok:
                        latencies.append(time.monotonic() - begin)

    begin = time.monotonic()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    elapsed = time.monotonic() - begin
    return {"tool": f"python httpx, {connections} threads", "requests": len(latencies),
            "requests_per_s": round(len(latencies) / elapsed, 1), "p50_s": percentile(latencies, 50),
            "errors": len(errors)}


def front_page_rate(url, seconds=10, connections=4):
    if WRK:
        return rate_wrk(url, seconds, connections)
    result = rate_python(url, seconds, connections)
    result["note"] = "wrk is not installed (apt-get install -y wrk): measured with a Python loop"
    return result
