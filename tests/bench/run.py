"""`make bench`: txzserver vs stock waitress vs waitress with a seekable range iterator.

Builds the Plone template (a site with a 100 MiB File) once, then runs each server alone on
its own copy and measures, on 127.0.0.1 only:
  starvation  front-page latency while 0/2/4/8 slow clients download the File at 2 MiB/s
  memory      server RSS before and at peak during the 8-reader phase
  throughput  one full-speed download of the File (HTTP/1.1; h2c for txzserver)
  rate        front-page requests/s and p50 (wrk when installed, else a Python loop)
Writes tests/bench/results/results.json, results.md and (with matplotlib) starvation.png,
and prints the Markdown tables. About 7 minutes on 2 cores.

    python -m tests.bench.run [--servers txzserver,waitress] [--phase-seconds 15] [--out DIR]
    python -m tests.bench.run --render    # results.md again from results.json
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from tests.bench import report
from tests.bench.clients import (
    MB, RssSampler, download, front_page_rate, probe_sequential, start_readers, stop_readers,
    wait_responsive,
)
from tests.bench.servers import THREADS, VARIANTS, start_variant, stop_quietly
from tests.support.instance import BIG_FILE_ID, BIG_FILE_SIZE, ROOT, SITE_ID, build_template
from tests.support.slow import timed_get

RESULTS = Path(__file__).resolve().parent / "results"
DOWNLOAD = f"/{SITE_ID}/{BIG_FILE_ID}/@@download/file"
WARMUP_REQUESTS = 20  # front pages before the first phase (templates compiled, caches filled)
DOWNLOADS = 3  # full-speed downloads per protocol; the median is reported


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {', '.join(VARIANTS)}")
    parser.add_argument("--readers", default="0,2,4,8", help="slow reader counts, one phase each")
    parser.add_argument("--reader-rate", type=float, default=2.0, help="MiB/s per slow reader")
    parser.add_argument("--phase-seconds", type=float, default=15.0)
    parser.add_argument("--timeout", type=float, default=10.0, help="front-page request timeout (s)")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--rate-connections", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true",
                        help="only rewrite results.md (and the plot) from OUT/results.json")
    args = parser.parse_args(argv)
    args.servers = [s for s in args.servers.split(",") if s]
    unknown = set(args.servers) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    args.readers = [int(n) for n in args.readers.split(",")]
    return args


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def git_state():
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return head + (" + uncommitted changes in src/" if dirty else "")


def versions():
    found = {}
    for name in ("Zope", "Products.CMFPlone", "plone.namedfile", "Twisted", "waitress", "httpx"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def starvation_phase(server, count, args):
    front = server.url(f"/{SITE_ID}")
    settle = wait_responsive(front)
    sampler = RssSampler(server.pid)
    sampler.start()
    readers = start_readers(server.port, DOWNLOAD, count, args.reader_rate * MB)
    try:
        served = sum(1 for r in readers if r.started_body.is_set() and r.status == 200)
        received_before = sum(r.received for r in readers)
        begin = time.monotonic()
        probe = probe_sequential(front, args.phase_seconds, args.timeout)
        elapsed = time.monotonic() - begin
        received = sum(r.received for r in readers) - received_before
        finished = sum(1 for r in readers if r.received >= BIG_FILE_SIZE)
    finally:
        stuck = stop_readers(readers)
        peak = sampler.stop()
    return {
        "readers": count, "readers_served": served, "readers_finished": finished,
        "reader_errors": [repr(r.error) for r in readers if r.error], "readers_not_stopped": len(stuck),
        "readers_mib_per_s": round(received / MB / elapsed, 2),
        "settle_s": None if settle is None else round(settle, 2),
        "rss_before": sampler.before, "rss_peak": peak, "front_page": probe,
    }


def bench_server(name, workdir, template, args):
    label = VARIANTS[name][0]
    run = {"label": label, "loadavg_start": round(os.getloadavg()[0], 2)}
    begin = time.monotonic()
    log(f"{label}: starting")
    server = start_variant(name, workdir, template["directory"])
    try:
        run["pid"] = server.pid
        front = server.url(f"/{SITE_ID}")
        if wait_responsive(front) is None:
            raise RuntimeError("front page never answered within 2 s")
        timed_get(server.url(DOWNLOAD), headers={"Range": "bytes=0-1048575"})  # warm the blob path
        for _ in range(WARMUP_REQUESTS):
            timed_get(front)
        run["rss_idle"] = server.rss()
        run["starvation"] = []
        for count in args.readers:
            phase = starvation_phase(server, count, args)
            run["starvation"].append(phase)
            probe = phase["front_page"]
            log(f"{label}: {count} readers ({phase['readers_served']} served, "
                f"front page answered again {phase['settle_s']} s before the phase, "
                f"{phase['readers_mib_per_s']} MiB/s together): {probe['requests']} front pages, "
                f"p50 {probe['p50_s']:.3f} s, p95 {probe['p95_s']:.3f} s, max {probe['max_s']:.3f} s, "
                f"{probe['timeouts']} timeouts; RSS peak {phase['rss_peak'] / MB:.0f} MiB")
        last = max(run["starvation"], key=lambda p: p["readers"])
        run["memory"] = {"readers": last["readers"], "rss_idle": run["rss_idle"],
                         "rss_before": last["rss_before"], "rss_peak": last["rss_peak"]}
        if wait_responsive(front) is None:
            raise RuntimeError("front page did not recover after the slow readers")
        run["download"] = {}
        protocols = [("http/1.1", False)] + ([("h2c", True)] if name == "txzserver" else [])
        for key, http2 in protocols:
            try:
                tries = [download(server.url(DOWNLOAD), BIG_FILE_SIZE, http2) for _ in range(DOWNLOADS)]
                result = dict(sorted(tries, key=lambda t: t["mib_per_s"])[len(tries) // 2])
                result["all_mib_per_s"] = [t["mib_per_s"] for t in tries]
                run["download"][key] = result
                log(f"{label}: 100 MiB download over {result['protocol']}: median "
                    f"{result['mib_per_s']} MiB/s of {result['all_mib_per_s']}")
            except Exception as exc:
                run["download"][key] = {"error": repr(exc)}
                log(f"{label}: download over {key} failed: {exc!r}")
        run["front_page_rate"] = rate = front_page_rate(front, args.rate_seconds, args.rate_connections)
        log(f"{label}: front page {rate.get('requests_per_s')} req/s, p50 {rate.get('p50_s')} s "
            f"({rate['tool']})")
    except Exception as exc:
        run["error"] = repr(exc)
        log(f"{label}: FAILED: {exc!r}")
        traceback.print_exc()
    finally:
        stop_quietly(server)
        run["seconds"] = round(time.monotonic() - begin, 1)
    return run


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def render(out):
    """Rewrite results.md and the plot from an earlier run's results.json."""
    results = json.loads((out / "results.json").read_text())
    note = report.plot(results, out / "starvation.png")
    if note:
        log(note)
    table = report.markdown(results)
    (out / "results.md").write_text(table)
    print(table)
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render:
        return render(args.out)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "git": git_state(), "versions": versions(), "threads": THREADS, "site": SITE_ID,
        "file_size": BIG_FILE_SIZE, "reader_rate_mib": args.reader_rate,
        "phase_seconds": args.phase_seconds, "timeout": args.timeout,
        "rate_seconds": args.rate_seconds, "rate_connections": args.rate_connections,
        "noise": "shared machine: other engineers ran test suites concurrently; numbers include that noise",
        "notes": [],
    }
    results = {"meta": meta, "servers": {}}
    with tempfile.TemporaryDirectory(prefix="txzserver-bench-") as workdir:
        log("building the Plone template (site + 100 MiB File)")
        template = build_template(Path(workdir) / "template")
        log(f"template built in {time.monotonic() - started:.0f} s")
        for name in args.servers:
            results["servers"][name] = bench_server(name, workdir, template, args)
    meta["loadavg_note"] = ", ".join(f"{run['label'].split(' (')[0]} {run['loadavg_start']}"
                                     for run in results["servers"].values())
    rates = [r.get("front_page_rate", {}) for r in results["servers"].values()]
    meta["rate_tool"] = next((r["tool"] for r in rates if "tool" in r), "-")
    for note in {r["note"] for r in rates if "note" in r}:
        meta["notes"].append(note)
    args.out.mkdir(parents=True, exist_ok=True)
    plot_note = report.plot(results, args.out / "starvation.png")
    if plot_note:
        meta["notes"].append(plot_note)
        log(plot_note)
    meta["total_seconds"] = round(time.monotonic() - started, 1)
    report.write_json(results, args.out / "results.json")
    table = report.markdown(results)
    (args.out / "results.md").write_text(table)
    log(f"done in {meta['total_seconds']:.0f} s; results in {args.out}")
    print()
    print(table)
    return 1 if any("error" in run for run in results["servers"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
