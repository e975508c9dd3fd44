"""`make bench`: task queue throughput, tasks/s, ``local`` (one instance) and ``zmq`` (a broker
and two instances on one ZEO server). Each run queues N no-op tasks (tests/support/taskviews.py,
``@@test-task-hit``) in one transaction and times from the queuing response to the last
committed run (read from the event logs). Writes tasks.json and tasks.md.

    python -m tests.bench.tasks [--tasks 500] [--out tests/bench/results]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

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


def run_local(work, template, count):
    directory = work / "local"
    conf = new_instance(directory, http_server(0), f"server-threads {THREADS}\n{queue_conf('local')}")
    copy_instance_data(template["directory"], directory)
    server = ServerProcess(conf, env=dict(with_task_views(conf), TXZ_TEST_INSTANCE="local")).start()
    try:
        return dict(backend="local", instances=1, **measure(server, [server], count, "B"))
    finally:
        server.stop()


def run_zmq(work, template, count):
    cluster = Cluster(work / "zmq", template)
    try:
        cluster.start_zeo()
        cluster.start_broker()
        for name in ("alpha", "beta"):
            cluster.start_instance(name, threads=THREADS, extra=queue_conf("zmq", cluster.bus),
                                   prepare=lambda conf, name=name: dict(with_task_views(conf),
                                                                        TXZ_TEST_INSTANCE=name))
        servers = list(cluster.instances.values())
        return dict(backend="zmq", instances=2, **measure(servers[0], servers, count, "Z"))
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
    for r in results["runs"]:
        per = ", ".join(f"{k} {v}" for k, v in sorted(r["per_instance"].items()))
        lines.append(f"| {r['backend']} | {r['instances']} | {r['tasks']} | {r['elapsed_s']:.2f} s "
                     f"| {r['tasks_per_s']:.0f} | {per} | {'yes' if r['ran_once'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--out", default="tests/bench/results")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="txz-bench-tasks-"))
    log(f"building the Plone template in {work}")
    template = build_template(work / "template")
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
               "python": sys.version.split()[0], "tasks": args.tasks, "runs": []}
    for run in (run_local, run_zmq):
        results["runs"].append(run(work, template, args.tasks))
        log(json.dumps(results["runs"][-1]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tasks.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "tasks.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
