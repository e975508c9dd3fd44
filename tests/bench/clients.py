"""Load generators and probes for the benchmark (all on 127.0.0.1).

Slow readers are tests.support.slow.SlowReader; its stop() shuts the socket down, so a reader
whose request waits in a starved server's queue ends too instead of being served later and
taking a thread from the next phase.
"""

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from pathlib import Path

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


def probe_sequential(url, seconds, timeout=10.0, **options):
    """GET ``url`` one request after the other for ``seconds``; latency summary. ``options``
    go to httpx (``verify``: the CA of an https URL's certificate).

    A request that times out counts with its elapsed time (about ``timeout``): a lower bound.
    A request that fails (a refused connection, a certificate not trusted) is in ``other``
    and not in ``ok``: a figure is the pages' only when ``ok`` is all of them.
    """
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        begin = time.monotonic()
        try:
            elapsed, status = timed_get(url, timeout=timeout, **options)
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
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies) if latencies else None,
        "latencies_s": [round(s, 4) for s in latencies],
    }


def wait_responsive(url, limit=60.0, **options):
    """Seconds until ``url`` answers 200 within 2 s (None if not within ``limit``); ``options``
    go to httpx."""
    begin = time.monotonic()
    while time.monotonic() - begin < limit:
        try:
            elapsed, status = timed_get(url, timeout=10, **options)
        except httpx.HTTPError:
            elapsed, status = 0, None
            time.sleep(0.5)
        if status == 200 and elapsed < 2:
            return time.monotonic() - begin
    return None


H2LOAD = shutil.which("h2load")
_H2LOAD_RATE = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_H2LOAD_REQUESTS = re.compile(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                              r"(\d+) errored, (\d+) timeout")
_H2LOAD_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def request_rate(url, seconds, clients, http1, warmup=1.0):
    """Requests/s of ``url`` with h2load: ``clients`` keep-alive connections, one request in
    flight on each (HTTP/1.1, or h2c with prior knowledge), ``warmup`` s before ``seconds`` of
    measurement; p50/p99 from h2load's per-request log (answered with 200)."""
    with tempfile.NamedTemporaryFile("r", suffix=".tsv", prefix="h2load-") as log:
        argv = [H2LOAD, f"-c{clients}", "-m1", f"-D{seconds:g}", f"--warm-up-time={warmup:g}",
                f"--log-file={log.name}", *(["--h1"] if http1 else []), url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + warmup + 60)
        times = []
        for line in log.read().splitlines():
            fields = line.split("\t")
            if len(fields) == 3 and fields[1] == "200":
                times.append(int(fields[2]) / 1e6)
    rate, counts, status = (r.search(done.stdout) for r in (_H2LOAD_RATE, _H2LOAD_REQUESTS, _H2LOAD_STATUS))
    if not rate or not counts:
        raise RuntimeError(f"h2load: {' '.join(argv[1:])}: {done.stdout[-800:]}{done.stderr[-800:]}")
    total, succeeded, failed, errored, timeouts = (int(g) for g in counts.groups())
    return {"argv": " ".join(argv[1:]).replace(log.name, "LOG"), "requests_per_s": float(rate.group(1)),
            "requests": total, "succeeded": succeeded, "failed": failed + errored + timeouts,
            "non_2xx": sum(int(g) for g in status.groups()[1:]) if status else None,
            "p50_s": percentile(times, 50), "p99_s": percentile(times, 99)}


REQUEST = "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: txzserver-bench\r\n\r\n"


def hold_idle(server, path, count, hold_seconds, timeout=5.0, concurrency=100):
    """Open ``count`` HTTP/1.1 keep-alive connections, one answered request each, and leave them
    idle for ``hold_seconds``: how many were answered, how many the server still holds, its RSS.
    A connection the server does not answer within ``timeout`` s counts as not answered."""
    request = REQUEST.format(path=path).encode()

    async def one(gate, writers):
        async with gate:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", server.port), timeout)
        writers.append(writer)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if not head.startswith(b"HTTP/1.1 200") or not length:
            raise RuntimeError(head.split(b"\r\n")[0].decode(errors="replace"))
        await asyncio.wait_for(reader.readexactly(int(length.group(1))), timeout)
        return reader

    async def run():
        gate, writers = asyncio.Semaphore(concurrency), []
        result = {"connections": count, "hold_s": hold_seconds, "rss_before": server.rss()}
        try:
            outcome = await asyncio.gather(*(one(gate, writers) for _ in range(count)),
                                           return_exceptions=True)
            answered = [r for r in outcome if not isinstance(r, BaseException)]
            result["answered"] = len(answered)
            result["errors"] = sorted({type(r).__name__ for r in outcome if isinstance(r, BaseException)})
            result["rss_answered"] = server.rss()
            await asyncio.sleep(hold_seconds)
            result["held"] = sum(1 for reader in answered if not reader.at_eof())
            result["rss_held"] = server.rss()
        finally:
            for writer in writers:
                writer.close()
        return result

    return asyncio.run(run())


_FINISHED = re.compile(r"finished in ([\d.]+)(ms|s)")
_DATA = re.compile(r"\((\d+)\) data")


def download(url, extra=()):
    """(seconds, body bytes) of one h2load client fetching ``url`` whole (h2load's own wall
    time); ``extra``: h2load arguments (``--h1``)."""
    argv = [H2LOAD, "-n1", "-c1", "-m1", *extra, url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300).stdout
    finished, status, data = _FINISHED.search(out), _H2LOAD_STATUS.search(out), _DATA.search(out)
    if not finished or not status or status.group(1) != "1" or not data:
        raise RuntimeError(f"h2load failed: {' '.join(argv)}\n{out}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return seconds, int(data.group(1))


def download_rate(url, http1):
    """GB/s (10**9 bytes/s) of one download of ``url`` over HTTP/1.1, or h2c with prior knowledge."""
    seconds, size = download(url, ["--h1"] if http1 else [])
    return size / seconds / 1e9


def process_tree(pid):
    """``pid`` and the processes below it (granian's worker is a child of its main process)."""
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*"):
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                pass
        index += 1
    return pids


def cpu_seconds(pid):
    """User and system CPU seconds used so far by ``pid`` and the processes below it: on a
    shared machine a steadier measure of a server's cost than a rate."""
    total = 0
    for one in process_tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5) fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def thread_times(pids):
    """{(pid, tid): (CPU seconds, context switches)} of every thread of ``pids``."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                switches = sum(int(line.split()[1]) for line in (task / "status").read_text().splitlines()
                               if "ctxt_switches:" in line)
            except OSError:  # the thread ended meanwhile
                continue
            found[(pid, int(task.name))] = ((int(fields[11]) + int(fields[12])) / tick, switches)
    return found
