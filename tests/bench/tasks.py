"""`make bench`: task queue throughput, tasks/s, ``local`` (one instance) and ``zmq`` (a broker
and two instances on one ZEO server). Each run queues N no-op tasks (tests/support/taskviews.py,
``@@test-task-hit``) in one transaction and times from the queuing response to the last
committed run (read from the event logs), ROUNDS times on the same servers. Writes tasks.json
and tasks.md (tests.bench.report renders it with the other results).

    python -m tests.bench.tasks [--tasks 500] [--rounds 3 (BENCH_ROUNDS)] [--out tests/bench/results]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import provenance
from tests.support.cluster import Cluster
from tests.support.instance import build_template, copy_instance_data, http_server, new_instance
from tests.support.instance import with_task_views
from tests.support.server import ServerProcess
from tests.support.tasks import hits, queue

THREADS, CONCURRENCY = 4, 2


def log(message):
    print(f"[tasks] {message}", file=sys.stderr, flush=True)


def measure(origin, servers, count, prefix):
    queue(origin, 20, prefix=f"warm{prefix}")  # templates, connections, caches
    deadline = time.monotonic() + 120
    while len(hits(servers, f"warm{prefix}")) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    response = queue(origin, count, prefix=prefix)
    assert response.status_code == 200, response.text[:300]
    queued = time.monotonic()
    deadline = queued + 600
    while len(found := hits(servers, prefix)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(found)} of {count} tasks ran")
        time.sleep(0.05)
    elapsed = time.monotonic() - queued
    per_instance = {}
    for _, instance, _, _ in found:
        per_instance[instance] = per_instance.get(instance, 0) + 1
    return {"tasks": count, "queue_request_s": round(queued - started, 3), "elapsed_s": round(elapsed, 3),
            "tasks_per_s": round(count / elapsed, 1), "per_instance": per_instance,
            "ran_once": len({h[0] for h in found}) == len(found) == count}


def queue_conf(backend, bus=None):
    lines = ["<task-queue default>", f"  backend {backend}", f"  concurrency {CONCURRENCY}"]
    if bus:
        lines += [f"  push {bus['tasks_push']}", f"  pull {bus['tasks_pull']}"]
    return "\n".join(lines + ["</task-queue>"])


def rounds_of(origin, servers, count, rounds, prefix):
    """``rounds`` measurements on the same servers (task names ``{prefix}r{n}x...``)."""
    found = []
    for n in range(rounds):
        found.append(measure(origin, servers, count, f"{prefix}r{n}x"))
        log(f"{prefix} round {n + 1}/{rounds}: {found[-1]['tasks_per_s']} tasks/s")
    return found


def run_local(work, template, count, rounds):
    directory = work / "local"
    conf = new_instance(directory, http_server(0), f"server-threads {THREADS}\n{queue_conf('local')}")
    copy_instance_data(template["directory"], directory)
    server = ServerProcess(conf, env=dict(with_task_views(conf), TXZ_TEST_INSTANCE="local")).start()
    try:
        return dict(backend="local", instances=1, rounds=rounds_of(server, [server], count, rounds, "B"))
    finally:
        server.stop()


def run_zmq(work, template, count, rounds):
    cluster = Cluster(work / "zmq", template)
    try:
        cluster.start_zeo()
        cluster.start_broker()
        for name in ("alpha", "beta"):
            cluster.start_instance(name, threads=THREADS, extra=queue_conf("zmq", cluster.bus),
                                   prepare=lambda conf, name=name: dict(with_task_views(conf),
                                                                        TXZ_TEST_INSTANCE=name))
        servers = list(cluster.instances.values())
        return dict(backend="zmq", instances=2, rounds=rounds_of(servers[0], servers, count, rounds, "Z"))
    finally:
        cluster.stop()


def markdown(results):
    lines = ["## Task queue throughput", "",
             f"Run {results['date']} on {results['cores']} cores, Python {results['python']}; "
             f"{results['tasks']} no-op tasks (`@@test-task-hit`: a read-only Zope request whose run "
             "is logged after commit) queued in one transaction, timed from the queuing response to "
             f"the last committed run. `server-threads {THREADS}`, `concurrency {CONCURRENCY}` per "
             "instance; the zmq run uses ZEO and a broker, all on the same machine.", "",
             "| Backend | Instances | Tasks | Time | Tasks/s | Runs per instance | Each ran once |",
             "|---|---:|---:|---:|---:|---|---|"]
    for run in results["runs"]:
        for r in run["rounds"]:
            per = ", ".join(f"{k} {v}" for k, v in sorted(r["per_instance"].items()))
            lines.append(f"| {run['backend']} | {run['instances']} | {r['tasks']} | {r['elapsed_s']:.2f} s "
                         f"| {r['tasks_per_s']:.0f} | {per} | {'yes' if r['ran_once'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 3)))
    parser.add_argument("--out", default="tests/bench/results")
    args = parser.parse_args(argv)
    provenance.require_clean()
    record = provenance.record()
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
               "python": sys.version.split()[0], "tasks": args.tasks, "rounds": args.rounds,
               "threads": THREADS, "concurrency": CONCURRENCY, "provenance": record, "runs": []}
    with tempfile.TemporaryDirectory(prefix="txz-bench-tasks-") as tmp:
        work = Path(tmp)
        log(f"building the Plone template in {work}")
        template = build_template(work / "template")
        for run in (run_local, run_zmq):
            results["runs"].append(run(work, template, args.tasks, args.rounds))
            log(json.dumps(results["runs"][-1]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tasks.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "tasks.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
