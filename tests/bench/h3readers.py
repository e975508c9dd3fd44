"""`make bench`: front-page latency over HTTP/1.1 while slow HTTP/3 clients download the File.

One txzserver (TLS listener with http3 on, server-threads 2) on a copy of the Plone template.
Phases of BENCH_PHASE_SECONDS: the front page fetched one request after the other with no
reader, then with BENCH_H3_READERS (8) HTTP/1.1 connections over TLS each reading the 256 MiB
File at BENCH_READER_RATE MiB/s (TCP backpressure: tests.support.slow.SlowReader), then with
as many QUIC connections taking it at the same rate (their stream windows grow at that rate:
tests.bench.h3client): the HTTP/1.1 phase is what "as flat as with HTTP/1.1 readers" is
measured against, in the same run. The three phases run BENCH_H3_ROUNDS (2) times, in
alternating order. Readers on the reactor's streaming path hold no publisher thread, so the page
stays near its baseline; what they cost is the reactor thread's CPU (the GIL's: pages wait for
it), measured per phase from ``/proc``. Writes results/h3readers.json; prints a Markdown table.

    python -m tests.bench.h3readers [--template DIR] [--out DIR]
"""

import argparse
import multiprocessing
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import provenance, report
from tests.bench.clients import MB, RssSampler, probe_sequential, thread_times, wait_responsive
from tests.bench.h3client import SlowReaders
from tests.bench.servers import FILE_SIZE, THREADS, add_template_and_out, alternating, template_or_new
from tests.support.instance import (
    BIG_FILE_ID, SITE_ID, copy_instance_data, https_server, new_instance,
)
from tests.support.server import ServerProcess
from tests.support.slow import SlowReader
from tests.support.tls import make_certificates

DOWNLOAD = f"/{SITE_ID}/{BIG_FILE_ID}/@@download/file"


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_server(workdir, template):
    directory = Path(workdir) / "txzserver"
    certs = make_certificates(Path(workdir))
    servers = https_server(0, certs["cert"], certs["key"], http3=True)
    conf = new_instance(directory, servers, f"server-threads {THREADS}\n")
    copy_instance_data(template, directory)
    return ServerProcess(conf).start(), certs["ca"]


class TLSReaders:
    """``count`` slow HTTP/1.1 readers over TLS, with SlowReaders' interface."""

    def __init__(self, port, path, ca, count, rate):
        context = ssl.create_default_context(cafile=str(ca))
        self.readers = [SlowReader(port, path, rate=rate, timeout=120, ssl_context=context)
                        for _ in range(count)]
        self.error = None

    def start(self):
        for reader in self.readers:
            reader.start()

    def received(self):
        return sum(reader.received for reader in self.readers)

    def stop(self):
        for reader in self.readers:
            reader.stop()

    def join(self, timeout):
        for reader in self.readers:
            reader.join(timeout)
        self.error = next((r.error for r in self.readers if r.error is not None), None)


def _run_h3_readers(port, path, ca, count, rate, received, stopping, error):
    """A child process's work: SlowReaders until ``stopping`` is set, the bytes they got
    kept in ``received`` (a shared value)."""
    readers = SlowReaders(port, path, ca, count, rate)
    readers.start()
    while not stopping.wait(0.1):
        received.value = readers.received()
    readers.stop()
    readers.join(30)
    received.value = readers.received()
    error.value = (repr(readers.error) if readers.error is not None else "").encode()[:500]


class H3Readers:
    """SlowReaders in a process of their own, as a browser is: aioquic's client in Python
    costs more CPU than the server's side, and in the bench's process it would hold the GIL
    the page probe needs (pages measured slower for the client's sake, not the server's)."""

    def __init__(self, port, path, ca, count, rate):
        context = multiprocessing.get_context("spawn")
        self._received = context.Value("q", 0)
        self._error = context.Array("c", 512)
        self._stopping = context.Event()
        self._process = context.Process(
            target=_run_h3_readers, daemon=True,
            args=(port, path, ca, count, rate, self._received, self._stopping, self._error))
        self.error = None

    def start(self):
        self._process.start()

    def received(self):
        return self._received.value

    def stop(self):
        self._stopping.set()

    def join(self, timeout):
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self.error = "the HTTP/3 readers' process did not stop"
        else:
            self.error = self._error.value.decode() or None


#: reader kind -> (label, class)
READERS = {"h1": ("HTTP/1.1 (TLS)", TLSReaders), "h3": ("HTTP/3", H3Readers)}


def reactor_cpu(server):
    """CPU seconds of the server's reactor (main) thread so far."""
    return thread_times([server.pid])[(server.pid, server.pid)][0]


def phase(server, ca, count, args, kind="h3"):
    """Front-page latency (HTTP/1.1 over TLS, httpx) with ``count`` slow readers of
    ``kind`` ("h1" or "h3")."""
    front = server.url(f"/{SITE_ID}", kind="https")
    if wait_responsive(front, verify=str(ca)) is None:
        raise RuntimeError(f"{front} did not answer 200 within 60 s")
    sampler = RssSampler(server.pid)
    sampler.start()
    readers = READERS[kind][1](server.ports["https"], DOWNLOAD, ca, count, args.reader_rate * MB)
    readers.start()
    try:
        deadline = time.monotonic() + 20
        while count and readers.received() < count * MB and time.monotonic() < deadline:
            time.sleep(0.1)
        cpu, began, start = reactor_cpu(server), time.monotonic(), readers.received()
        probe = probe_sequential(front, args.phase_seconds, args.timeout, verify=str(ca))
        cpu, elapsed, received = reactor_cpu(server) - cpu, time.monotonic() - began, readers.received()
    finally:
        readers.stop()
        readers.join(30)
        peak = sampler.stop()
    del probe["latencies_s"]
    during = (received - start) / MB
    return {"readers": count, "kind": READERS[kind][0] if count else "none",
            "reader_mib": round(received / MB, 1),
            "reactor_cpu_share": round(cpu / elapsed, 3),
            "reactor_ms_per_mib": round(cpu * 1000 / during, 2) if during >= 1 else None,
            "reader_error": None if readers.error is None else str(readers.error),
            "rss_before_mib": round(sampler.before / MB, 1), "rss_peak_mib": round(peak / MB, 1),
            "front_page": probe}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=int(os.environ.get("BENCH_H3_READERS", 8)))
    parser.add_argument("--reader-rate", type=float,
                        default=float(os.environ.get("BENCH_READER_RATE", 2.0)))
    parser.add_argument("--phase-seconds", type=float,
                        default=float(os.environ.get("BENCH_PHASE_SECONDS", 20)))
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_H3_ROUNDS", 2)))
    add_template_and_out(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    provenance.require_clean()
    record = provenance.record()
    with tempfile.TemporaryDirectory(prefix="txzserver-h3bench-") as workdir:
        template = template_or_new(args.template, workdir, FILE_SIZE)
        server, ca = start_server(workdir, template)
        try:
            phases = []
            # no reader: TLSReaders of none start no thread
            order = ((0, "h1"), (args.readers, "h1"), (args.readers, "h3"))
            for round_ in range(args.rounds):
                for count, kind in alternating(order, round_):
                    phases.append(found := dict(phase(server, ca, count, args, kind), round=round_))
                    probe = found["front_page"]
                    log(f"  {count} {found['kind']} readers ({found['reader_mib']} MiB read): p50"
                        f" {probe['p50_s']:.3f} s, p99 {probe['p99_s']:.3f} s,"
                        f" {probe['timeouts']} timeouts, reactor"
                        f" {100 * found['reactor_cpu_share']:.0f}% of a core")
        finally:
            server.stop(timeout=30)
    results = {"phases": phases, "rounds": args.rounds, "provenance": record, "file_size": FILE_SIZE,
               "reader_rate_mib": args.reader_rate, "phase_seconds": args.phase_seconds}
    report.write_step(results, "h3readers", report.h3readers, args.out)
    failed = sorted({other for found in phases for other in found["front_page"]["other"]})
    if failed:
        print(f"pages failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
