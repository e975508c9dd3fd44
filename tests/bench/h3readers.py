"""`make bench`: front-page latency over HTTP/1.1 while slow HTTP/3 clients download the File.

One txzserver (TLS listener with http3 on, server-threads 2) on a copy of the Plone template.
Phases of BENCH_PHASE_SECONDS: the front page fetched one request after the other with no
reader, then with BENCH_H3_READERS (8) QUIC connections each taking the 256 MiB File at
BENCH_READER_RATE MiB/s (their stream windows grow at that rate: tests.bench.h3client).
Readers on the reactor's streaming path hold no publisher thread, so the page stays near its
baseline. Writes results/h3readers.json; prints a Markdown table.

    python -m tests.bench.h3readers [--template DIR] [--out DIR]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import provenance, report
from tests.bench.clients import MB, RssSampler, probe_sequential, wait_responsive
from tests.bench.h3client import SlowReaders
from tests.bench.servers import FILE_SIZE, THREADS
from tests.support.instance import (
    BIG_FILE_ID, SITE_ID, build_template, copy_instance_data, https_server, new_instance,
)
from tests.support.server import ServerProcess
from tests.support.tls import make_certificates

RESULTS = Path(__file__).resolve().parent / "results"
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


def phase(server, ca, count, args):
    """Front-page latency (HTTP/1.1 over TLS, httpx) with ``count`` slow HTTP/3 readers."""
    front = server.url(f"/{SITE_ID}", kind="https")
    wait_responsive(front)
    sampler = RssSampler(server.pid)
    sampler.start()
    readers = SlowReaders(server.ports["https"], DOWNLOAD, ca, count, args.reader_rate * MB)
    readers.start()
    try:
        deadline = time.monotonic() + 20
        while count and readers.received() < count * MB and time.monotonic() < deadline:
            time.sleep(0.1)
        probe = probe_sequential(front, args.phase_seconds, args.timeout)
        received = readers.received()
    finally:
        readers.stop()
        readers.join(30)
        peak = sampler.stop()
    del probe["latencies_s"]
    return {"readers": count, "reader_mib": round(received / MB, 1),
            "reader_error": None if readers.error is None else repr(readers.error),
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
    parser.add_argument("--template", type=Path, help="a built template instance to reuse")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    provenance.require_clean()
    record = provenance.record()
    with tempfile.TemporaryDirectory(prefix="txzserver-h3bench-") as workdir:
        template = args.template
        if template is None:
            log(f"building the Plone template (site + {FILE_SIZE // MB} MiB File)")
            template = build_template(Path(workdir) / "template", size=FILE_SIZE)["directory"]
        server, ca = start_server(workdir, template)
        try:
            phases = []
            for count in (0, args.readers):
                phases.append(found := phase(server, ca, count, args))
                probe = found["front_page"]
                log(f"  {count} HTTP/3 readers ({found['reader_mib']} MiB read): p50"
                    f" {probe['p50_s']:.3f} s, p99 {probe['p99_s']:.3f} s,"
                    f" {probe['timeouts']} timeouts")
        finally:
            server.stop(timeout=30)
    results = {"phases": phases, "provenance": record, "file_size": FILE_SIZE,
               "reader_rate_mib": args.reader_rate, "phase_seconds": args.phase_seconds}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "h3readers.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print("\n".join(report.h3readers({"h3readers": results}, 2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
