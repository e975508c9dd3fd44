"""`make bench`: what a small request costs beside Zope's own work: system calls and CPU.

For ``/Plone/@@ok`` (about 1 ms of Zope), on copies of the Plone template:

- System calls per request of a txzserver (``server-threads 2``, h2c on): ``strace -c -f``
  attached while h2load asks over HTTP/1.1, then over h2c, BENCH_SYSCALL_SECONDS (5) each.
  strace slows the server; what is counted per request does not depend on it.
- CPU per request, by thread, and context switches per request (from ``/proc``): txzserver and
  granian (WSGI, the same thread count) up at once, BENCH_ROUNDS (3) alternating rounds of
  BENCH_RATE_SECONDS (5) HTTP/1.1 runs. Both are held at one core by the GIL, so the CPU per
  request is the cost that sets requests/s.

Writes results/syscalls.json; prints Markdown tables.

    python -m tests.bench.syscalls [--template DIR] [--out DIR]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import provenance, report
from tests.bench.clients import process_tree, request_rate, thread_times, wait_responsive
from tests.bench.servers import (
    THREADS, add_template_and_out, alternating, start_variant, stop_quietly, template_or_new,
)
from tests.support.instance import SITE_ID

PATH = f"/{SITE_ID}/@@ok"
CLIENTS = 4


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_strace_summary(text):
    """{system call: calls} from the table ``strace -c`` writes (the total row left out)."""
    calls = {}
    for line in text.splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] name
        if len(fields) in (5, 6) and fields[3].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = calls.get(fields[-1], 0) + int(fields[3])
    return calls


def count_system_calls(server, http1, seconds, workdir):
    """System calls per answered request while h2load asks ``PATH`` for ``seconds`` s."""
    out = Path(workdir) / f"strace-{'h1' if http1 else 'h2c'}.txt"
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(server.pid)],
                              stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached to every thread
    try:
        found = request_rate(server.url(PATH), seconds, CLIENTS, http1, warmup=0)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    calls = parse_strace_summary(out.read_text())
    answered = found["succeeded"]
    if not answered:
        raise RuntimeError(f"no request answered under strace: {found}")
    return {"requests": answered,
            "per_request": {name: round(n / answered, 2) for name, n in
                            sorted(calls.items(), key=lambda item: -item[1])},
            "total_per_request": round(sum(calls.values()) / answered, 2)}


def cpu_per_request(server, seconds, main_thread):
    """One HTTP/1.1 run: requests/s, CPU ms and context switches per request, and with
    ``main_thread`` the main thread's part (txzserver's reactor) apart."""
    pids = process_tree(server.pid)
    before = thread_times(pids)
    found = request_rate(server.url(PATH), seconds, CLIENTS, True, warmup=0)
    after = thread_times(pids)
    answered = found["succeeded"] or 1
    cpu = switches = main = 0.0
    for key, (seconds_after, switches_after) in after.items():
        seconds_before, switches_before = before.get(key, (0.0, 0))
        cpu += seconds_after - seconds_before
        switches += switches_after - switches_before
        if key == (server.pid, server.pid):
            main = seconds_after - seconds_before
    return {"requests_per_s": found["requests_per_s"],
            "cpu_ms_per_request": round(cpu / answered * 1000, 3),
            "main_thread_ms_per_request": round(main / answered * 1000, 3) if main_thread else None,
            "context_switches_per_request": round(switches / answered, 2),
            "cores": round(cpu / seconds, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--syscall-seconds", type=float,
                        default=float(os.environ.get("BENCH_SYSCALL_SECONDS", 5)))
    parser.add_argument("--rate-seconds", type=float,
                        default=float(os.environ.get("BENCH_RATE_SECONDS", 5)))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 3)))
    add_template_and_out(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if shutil.which("strace") is None:
        print("tests.bench.syscalls needs strace: make bench-tools (apt-get install strace)",
              file=sys.stderr)
        return 2
    provenance.require_clean()
    record = provenance.record()
    with tempfile.TemporaryDirectory(prefix="txzserver-syscalls-") as workdir:
        template = template_or_new(args.template, workdir)
        servers = {name: start_variant(name, Path(workdir) / name, template)
                   for name in ("txzserver", "granian")}
        try:
            for server in servers.values():
                wait_responsive(server.url(f"/{SITE_ID}"))
                request_rate(server.url(PATH), 2, CLIENTS, True)  # warm
            calls = {}
            for protocol, http1 in (("HTTP/1.1", True), ("h2c", False)):
                calls[protocol] = count_system_calls(servers["txzserver"], http1,
                                                     args.syscall_seconds, workdir)
                log(f"  txzserver {protocol}: {calls[protocol]['total_per_request']} system calls"
                    f" per request ({calls[protocol]['requests']} requests under strace)")
            cpu = {name: [] for name in servers}
            for round_ in range(args.rounds):
                for name in alternating(servers, round_):
                    cpu[name].append(found := cpu_per_request(servers[name], args.rate_seconds,
                                                                   name == "txzserver"))
                    log(f"  {name}: {found['requests_per_s']:.0f} req/s, {found['cpu_ms_per_request']}"
                        f" ms CPU and {found['context_switches_per_request']} context switches"
                        f" per request")
        finally:
            for server in servers.values():
                stop_quietly(server)
    results = {"provenance": record, "path": PATH, "clients": CLIENTS, "threads": THREADS,
               "syscall_seconds": args.syscall_seconds, "rate_seconds": args.rate_seconds,
               "system_calls": calls, "cpu": cpu,
               "cpu_ms_median": {name: statistics.median(r["cpu_ms_per_request"] for r in runs)
                                 for name, runs in cpu.items()}}
    report.write_step(results, "syscalls", report.syscalls, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
