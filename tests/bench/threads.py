"""`make bench`: publisher threads and the GIL. What one thread, two threads, and two threads at
a 20 ms switch interval (``python-switch-interval``) give for `@@ok` and the front page.

On copies of the Plone template, on 127.0.0.1:

- txzserver with ``server-threads 1``, ``server-threads 2`` and ``server-threads 2`` plus
  ``python-switch-interval 20ms``, up at once, BENCH_ROUNDS (3) alternating rounds of
  BENCH_RATE_SECONDS (5) h2load runs (4 HTTP/1.1 connections, one request in flight on each)
  per page: requests/s and the process's CPU per request (from ``/proc``).
- What the longer interval costs: on the two-thread servers, pages asked one after the other
  (one publisher thread busy) while `@@ok` is asked one after the other beside them: `@@ok`'s
  requests/s, p50 and p99, and the pages/s, in the same alternating rounds.
- Zope's app called in-process (no server, no HTTP) by one thread, by two threads at once, and
  by two at a 20 ms switch interval (tests.bench.inprocess --threads): what two busy Python
  threads cost with no server at all.

Writes results/threads.json; prints Markdown tables.

    python -m tests.bench.threads [--template DIR] [--out DIR]
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.bench import provenance, report
from tests.bench.clients import cpu_seconds, request_rate, wait_responsive
from tests.bench.inprocess import CONCURRENCY, in_subprocess
from tests.bench.run import PAGES
from tests.bench.servers import add_template_and_out, alternating, stop_quietly, template_or_new
from tests.support.instance import copy_instance_data, http_server, new_instance
from tests.support.server import ServerProcess

CLIENTS = 4
#: configuration name -> zope.conf lines: the in-process configurations as a server's
SERVER_CONFIGURATIONS = {
    name: f"server-threads {threads}\n"
          + (f"python-switch-interval {interval * 1000:g}ms\n" if interval else "")
    for name, (threads, interval) in CONCURRENCY.items()
}
#: the configurations whose small requests are measured beside pages
BESIDE_PAGES = ("2 threads", "2 threads, 20 ms")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_server(directory, template, lines):
    conf = new_instance(directory, http_server(0), lines)
    copy_instance_data(template, directory)
    return ServerProcess(conf).start()


def rate_and_cpu(server, path, seconds, clients=CLIENTS):
    """h2load on ``path`` over HTTP/1.1: requests/s, p50, p99 and the process's CPU per request."""
    cpu = cpu_seconds(server.pid)
    found = request_rate(server.url(path), seconds, clients, True, warmup=0)
    cpu = cpu_seconds(server.pid) - cpu
    return {"requests_per_s": found["requests_per_s"], "p50_s": found["p50_s"],
            "p99_s": found["p99_s"], "failed": found["failed"],
            "cpu_ms_per_request": round(cpu / max(found["succeeded"], 1) * 1000, 3)}


def small_beside_pages(server, seconds):
    """Pages on one connection and `@@ok` on another, at the same time, for ``seconds``."""
    pages = {}
    runner = threading.Thread(target=lambda: pages.update(
        request_rate(server.url(PAGES["page"]), seconds, 1, True, warmup=0)))
    runner.start()
    small = request_rate(server.url(PAGES["@@ok"]), seconds, 1, True, warmup=0)
    runner.join()
    return {"requests_per_s": small["requests_per_s"], "p50_s": small["p50_s"],
            "p99_s": small["p99_s"], "failed": small["failed"] + pages.get("failed", 1),
            "pages_per_s": pages.get("requests_per_s")}


def in_process(directory, template, seconds, rounds):
    """tests.bench.inprocess --threads on a fresh copy of the template."""
    measured = in_subprocess(directory, template, ["--threads", str(rounds), f"{seconds:g}",
                                                   *PAGES.values()], 900)
    return {what: measured[path] for what, path in PAGES.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate-seconds", type=float,
                        default=float(os.environ.get("BENCH_RATE_SECONDS", 5)))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 3)))
    add_template_and_out(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    provenance.require_clean()
    record = provenance.record()
    with tempfile.TemporaryDirectory(prefix="txzserver-threads-") as workdir:
        template = template_or_new(args.template, workdir)
        servers = {}
        try:
            for index, (name, lines) in enumerate(SERVER_CONFIGURATIONS.items()):
                servers[name] = start_server(Path(workdir) / f"server{index}", template, lines)
            for server in servers.values():
                if wait_responsive(server.url(PAGES["page"])) is None:
                    raise RuntimeError(f"{server.url(PAGES['page'])} did not answer within 60 s")
                for path in PAGES.values():
                    request_rate(server.url(path), 2, CLIENTS, True)  # warm
            rates = {what: {name: [] for name in servers} for what in PAGES}
            beside = {name: [] for name in BESIDE_PAGES}
            for round_ in range(args.rounds):
                for what, path in PAGES.items():
                    for name in alternating(servers, round_):
                        rates[what][name].append(found := rate_and_cpu(servers[name], path,
                                                                        args.rate_seconds))
                        log(f"  {name}, {what}: {found['requests_per_s']:.1f} req/s,"
                            f" {found['cpu_ms_per_request']} ms CPU per request")
                for name in alternating(BESIDE_PAGES, round_):
                    beside[name].append(found := small_beside_pages(servers[name], args.rate_seconds))
                    log(f"  {name}, @@ok beside pages: {found['requests_per_s']:.0f} req/s, p99"
                        f" {found['p99_s']}, pages {found['pages_per_s']}/s")
        finally:
            for server in servers.values():
                stop_quietly(server)
        log("Zope in-process on one and two threads")
        inprocess = in_process(Path(workdir) / "inprocess", template, args.rate_seconds, args.rounds)
    results = {"provenance": record, "clients": CLIENTS, "rate_seconds": args.rate_seconds,
               "rounds": args.rounds, "servers": rates, "beside_pages": beside,
               "in_process": inprocess}
    report.write_step(results, "threads", report.threads, args.out)
    failed = sum(1 for runs in [*rates["@@ok"].values(), *rates["page"].values(), *beside.values()]
                 for run in runs if run["failed"])
    if failed:
        print(f"requests failed in {failed} runs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
