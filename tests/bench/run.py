"""`make bench`: txzserver against waitress and granian on the same Plone site, in alternating
rounds, and Zope called in-process as the limit they are measured against.

Builds the Plone template (a site with a 256 MiB File) once; then, ROUNDS times, runs each
variant in turn (txzserver, waitress, granian, in-process, loopback limit, txzserver, ...) alone on a fresh
copy of it and measures, on 127.0.0.1 only:
  starvation  front-page p50/p99/timeouts while 0/2/4/8 slow clients download the File
  rates       `@@ok` and front-page requests/s over HTTP/1.1 and (txzserver, granian) h2c, with
              h2load; in-process: the same two pages called in one thread, no HTTP
  downloads   the File fetched whole by one h2load client over HTTP/1.1 and h2c, GB/s; and from
              a blocking server of a few lines (the loopback limit: tests/bench/ceiling.py)
  idle        keep-alive connections held idle, and the server's RSS growth
Writes tests/bench/results/results.json, then results.md and starvation.png (tests.bench.report).
Refuses a tree with uncommitted changes unless BENCH_ALLOW_DIRTY=1 (tests.bench.provenance).

Every setting has an environment variable, for short trial runs (BENCH_ROUNDS=1
BENCH_PHASE_SECONDS=3 BENCH_RATE_SECONDS=2 ...); see parse_args.

    python -m tests.bench.run [--rounds 3] [--servers txzserver,waitress,granian,inprocess]
"""

import argparse
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.bench import ceiling, inprocess, provenance, report
from tests.bench.clients import (
    H2LOAD, MB, RssSampler, cpu_seconds, download_rate, hold_idle, probe_sequential, request_rate,
    start_readers, stop_readers, wait_responsive,
)
from tests.bench.servers import FILE_SIZE, THREADS, VARIANTS, start_variant, stop_quietly
from tests.support.instance import (
    BIG_FILE_ID, SITE_ID, build_template,
)
from tests.support.slow import timed_get

RESULTS = Path(__file__).resolve().parent / "results"
DOWNLOAD = f"/{SITE_ID}/{BIG_FILE_ID}/@@download/file"
PAGES = {"@@ok": f"/{SITE_ID}/@@ok", "page": f"/{SITE_ID}"}
WARMUP_REQUESTS = 20  # front pages before the first phase (templates compiled, caches filled)
#: Variants that speak h2c (prior knowledge) besides HTTP/1.1.
H2C = {"txzserver", "granian"}
#: Downloads of the whole File per protocol and run (after one that is not counted).
DOWNLOADS = 3


def _env(name, default):
    return os.environ.get(f"BENCH_{name}", default)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=int(_env("ROUNDS", 3)), help="BENCH_ROUNDS")
    parser.add_argument("--servers", default=_env("SERVERS", "txzserver,waitress,granian,inprocess,ceiling"),
                        help=f"BENCH_SERVERS: comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--readers", default=_env("READERS", "0,2,4,8"),
                        help="BENCH_READERS: slow reader counts, one phase each")
    parser.add_argument("--reader-rate", type=float, default=2.0, help="MiB/s per slow reader")
    parser.add_argument("--phase-seconds", type=float, default=float(_env("PHASE_SECONDS", 10)))
    parser.add_argument("--timeout", type=float, default=10.0, help="front-page request timeout (s)")
    parser.add_argument("--rate-seconds", type=float, default=float(_env("RATE_SECONDS", 5)))
    parser.add_argument("--rate-clients", type=int, default=4)
    parser.add_argument("--idle-connections", type=int, default=int(_env("IDLE_CONNECTIONS", 500)))
    parser.add_argument("--idle-seconds", type=float, default=float(_env("IDLE_SECONDS", 5)))
    parser.add_argument("--downloads", type=int, default=int(_env("DOWNLOADS", DOWNLOADS)),
                        help="BENCH_DOWNLOADS: whole-File downloads per protocol and run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.servers = [s for s in args.servers.split(",") if s]
    unknown = set(args.servers) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    args.readers = [int(n) for n in args.readers.split(",")]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def starvation_phase(server, count, args):
    front = server.url(f"/{SITE_ID}")
    settle = wait_responsive(front)
    sampler = RssSampler(server.pid)
    sampler.start()
    readers = start_readers(server.port, DOWNLOAD, count, args.reader_rate * MB)
    try:
        served = sum(1 for r in readers if r.started_body.is_set() and r.status == 200)
        probe = probe_sequential(front, args.phase_seconds, args.timeout)
    finally:
        stuck = stop_readers(readers)
        peak = sampler.stop()
    del probe["latencies_s"]
    return {"readers": count, "readers_served": served, "readers_not_stopped": len(stuck),
            "reader_errors": sorted({repr(r.error) for r in readers if r.error}),
            "settle_s": None if settle is None else round(settle, 2),
            "rss_before": sampler.before, "rss_peak": peak, "front_page": probe}


def measure_rates(server, name, args):
    rates = {}
    protocols = [("HTTP/1.1", True)] + ([("h2c", False)] if name in H2C else [])
    for what, path in PAGES.items():
        for protocol, http1 in protocols:
            key = f"{what} {protocol}"
            try:
                found = request_rate(server.url(path), args.rate_seconds, args.rate_clients, http1)
                rates[key] = found
                log(f"  {key}: {found['requests_per_s']:.0f} req/s, p50 {found['p50_s']}, "
                    f"p99 {found['p99_s']}, {found['failed']} failed")
            except Exception as exc:
                rates[key] = {"error": repr(exc)}
                log(f"  {key}: failed: {exc!r}")
    return rates


def measure_downloads(server, name, args):
    """Whole-File downloads by one h2load client, per protocol (one not counted first): GB/s,
    and the server's CPU seconds per GiB sent."""
    found = {}
    protocols = [("HTTP/1.1", True)] + ([("h2c", False)] if name in H2C else [])
    for protocol, http1 in protocols:
        try:
            download_rate(server.url(DOWNLOAD), http1)
            rates, cpu = [], []
            for _ in range(args.downloads):
                before = cpu_seconds(server.pid)
                rates.append(round(download_rate(server.url(DOWNLOAD), http1), 3))
                cpu.append(round((cpu_seconds(server.pid) - before) / (FILE_SIZE / 2**30), 3))
            found[protocol] = {"gb_per_s": rates, "cpu_s_per_gib": cpu}
            log(f"  download {protocol}: {', '.join(f'{r:.2f}' for r in rates)} GB/s, "
                f"server CPU {', '.join(f'{c:.2f}' for c in cpu)} s/GiB")
        except Exception as exc:
            found[protocol] = {"error": repr(exc)}
            log(f"  download {protocol}: failed: {exc!r}")
    return found


def bench_in_process(directory, template, args):
    """Zope's app called in-process (tests.bench.inprocess) on a fresh copy of the template."""
    run = {"loadavg_start": round(os.getloadavg()[0], 2)}
    begin = time.monotonic()
    try:
        measured = inprocess.in_subprocess(directory, template["directory"],
                                           [f"{args.rate_seconds:g}", "1", *PAGES.values()], 600)
        run["rates"] = {f"{what} in-process": measured[path] for what, path in PAGES.items()}
        for key, found in run["rates"].items():
            log(f"  {key}: {found['requests_per_s']:.0f} req/s, p50 {found['p50_s']}, p99 {found['p99_s']}")
    except Exception as exc:
        run["error"] = repr(exc)
        log(f"in-process: FAILED: {exc!r}")
    run["seconds"] = round(time.monotonic() - begin, 1)
    return run


def bench_ceiling(template, args):
    """The loopback limit of the downloads (tests/bench/ceiling.py) on the template's blob."""
    run = {"loadavg_start": round(os.getloadavg()[0], 2)}
    try:
        run["downloads"] = ceiling.measure(template["directory"], args.downloads)
        for mode, found in run["downloads"].items():
            log(f"  {mode}: {', '.join(f'{r:.2f}' for r in found['gb_per_s'])} GB/s")
    except Exception as exc:
        run["error"] = repr(exc)
        log(f"loopback limit: FAILED: {exc!r}")
    return run


def bench_server(name, directory, template, args):
    """One run of server ``name``: start it on a fresh copy, measure everything, stop it."""
    label, kind, _ = VARIANTS[name]
    if kind == "inprocess":
        return bench_in_process(directory, template, args)
    if kind == "ceiling":
        return bench_ceiling(template, args)
    run = {"loadavg_start": round(os.getloadavg()[0], 2)}
    begin = time.monotonic()
    server = start_variant(name, directory, template["directory"])
    try:
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
            log(f"  {count} slow readers ({phase['readers_served']} served): {probe['requests']} pages, "
                f"p50 {probe['p50_s']:.3f} s, p99 {probe['p99_s']:.3f} s, {probe['timeouts']} timeouts")
        if wait_responsive(front) is None:
            raise RuntimeError("front page did not recover after the slow readers")
        run["rates"] = measure_rates(server, name, args)
        run["downloads"] = measure_downloads(server, name, args)
        run["idle"] = found = hold_idle(server, PAGES["@@ok"], args.idle_connections, args.idle_seconds)
        log(f"  idle: {found['answered']} of {found['connections']} answered, {found['held']} held "
            f"after {found['hold_s']:g} s, RSS +{(found['rss_held'] - found['rss_before']) / MB:.1f} MiB")
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


#: The BENCH_* variables this step reads (parse_args). Others, such as make's BENCH_STEPS (which
#: steps `make bench` runs) or another step's, change none of its numbers.
RUN_VARIABLES = frozenset(f"BENCH_{name}" for name in (
    "ROUNDS", "SERVERS", "READERS", "PHASE_SECONDS", "RATE_SECONDS", "IDLE_CONNECTIONS",
    "IDLE_SECONDS", "DOWNLOADS"))


def non_defaults(argv):
    """The settings that differ from a plain `make bench`: this step's BENCH_* variables and
    arguments."""
    found = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k in RUN_VARIABLES]
    rest = list(argv)
    if "--out" in rest:  # where results go changes no number
        del rest[rest.index("--out"):rest.index("--out") + 2]
    return found + [a for a in rest if not a.startswith("--out=")]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    provenance.require_clean()
    if H2LOAD is None:
        print("h2load not found: make bench-tools (apt-get install nghttp2-client)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    meta = {
        "provenance": provenance.record(), "non_defaults": non_defaults(argv),
        "rounds": args.rounds, "order": args.servers,
        "threads": THREADS, "site": SITE_ID, "file_size": FILE_SIZE, "readers": args.readers,
        "reader_rate_mib": args.reader_rate, "phase_seconds": args.phase_seconds, "timeout": args.timeout,
        "rate_seconds": args.rate_seconds, "rate_clients": args.rate_clients,
        "idle_connections": args.idle_connections, "idle_seconds": args.idle_seconds,
        "downloads": args.downloads,
    }
    results = {"meta": meta, "servers": {name: {"label": VARIANTS[name][0], "kind": VARIANTS[name][1],
                                                "runs": []}
                                         for name in args.servers}}
    with tempfile.TemporaryDirectory(prefix="txzserver-bench-") as workdir:
        log(f"building the Plone template (site + {FILE_SIZE // MB} MiB File)")
        template = build_template(Path(workdir) / "template", size=FILE_SIZE)
        for round_ in range(args.rounds):
            for name in args.servers:
                log(f"round {round_ + 1}/{args.rounds}: {VARIANTS[name][0]}")
                run = bench_server(name, Path(workdir) / f"{name}-{round_}", template, args)
                results["servers"][name]["runs"].append(dict(run, round=round_ + 1))
    meta["total_seconds"] = round(time.monotonic() - started, 1)
    after = provenance.git_state()
    if after != {"commit": meta["provenance"]["commit"], "dirty": meta["provenance"]["dirty"]}:
        meta["changed_during_run"] = after
        log(f"!!! the tree changed during the run: {after}")
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(results, args.out / "results.json")
    text = report.write_all(args.out)
    log(f"done in {meta['total_seconds']:.0f} s; results in {args.out}")
    print()
    print(text)
    failed = any("error" in run for s in results["servers"].values() for run in s["runs"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
