"""The measurements behind docs/performance.md's "Scale model": bus throughput through ZeroMQ and NATS
JetStream with 10, 50 and 100 subscribing processes (tests/bench/scale_bus.py) and the CPU an
instance spends per event per WebSocket subscriber (tests/bench/scale_hub.py), on loopback.

Usage: python -m tests.bench.scale [--rounds 2] [--events 4000] [--subscribers 10,50,100]
       [--connections 1000,10000] [--hub-events 30] [--out tests/bench/results] [--no-docs]

Every point is a fixed count of events, so the run is bounded (7-12 minutes on 2 cores,
most of it the NATS points).
Rounds alternate which bus goes first. Writes ``scale.json`` (every point of every round, the
provenance), then ``scale.md`` and docs/performance.md's section between the scale markers, both
rendered by tests/bench/scale_model.py from ``scale.json`` alone (tests/unit/test_bench_scale.py
checks the page against the committed file). Like every script of `make bench` it refuses a
dirty tree unless BENCH_ALLOW_DIRTY=1. The clients run on the same 2 cores as the servers, and
other work on the machine shows in the figures: the load average is recorded per point.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import provenance, scale_bus, scale_hub, scale_model

RESULTS = Path(__file__).resolve().parent / "results"
BUSES = {"zmq": scale_bus.zmq_point, "nats": scale_bus.nats_point}


def log(message):
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _numbers(text):
    return [int(n) for n in text.split(",") if n]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--events", type=int, default=4000, help="events per bus point")
    parser.add_argument("--subscribers", type=_numbers, default=[10, 50, 100])
    parser.add_argument("--connections", type=_numbers, default=[1000, 10000])
    parser.add_argument("--hub-events", type=int, default=30, help="events per fan-out point")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-docs", "--no-readme", dest="no_readme", action="store_true",
                        help="leave docs/performance.md alone")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.events < 1 or args.hub_events < 1:
        parser.error("--rounds, --events and --hub-events must be at least 1")
    return args


def _point(measure, *args):
    load = round(os.getloadavg()[0], 2)
    try:
        found = measure(*args)
    except Exception as exc:  # one failed point is recorded, the run goes on
        found = {"error": repr(exc)}
    return dict(found, loadavg_1min=load)


def run(args):
    results = {"provenance": provenance.record(), "rounds": args.rounds, "events": args.events,
               "hub_events": args.hub_events, "hub_users": scale_hub.USERS,
               "bus": {name: [] for name in BUSES}, "fanout": []}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="txz-scale-") as tmp:
        for round_ in range(args.rounds):
            order = list(BUSES) if round_ % 2 == 0 else list(BUSES)[::-1]
            for name in order:
                for count in args.subscribers:
                    found = _point(BUSES[name], Path(tmp), args.events, count)
                    results["bus"][name].append(dict(found, round=round_ + 1))
                    log(f"round {round_ + 1} {name} {count} subscribers: {found}")
            for count in args.connections:
                found = _point(scale_hub.measure, count, args.hub_events)
                results["fanout"].append(dict(found, round=round_ + 1))
                log(f"round {round_ + 1} fan-out {count} connections: {found}")
    results["total_seconds"] = round(time.monotonic() - started, 1)
    return results


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    provenance.require_clean()
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    text = scale_model.write_all(args.out, readme=not args.no_readme)
    print(text)
    failed = [p for points in results["bus"].values() for p in points if "error" in p]
    failed += [p for p in results["fanout"] if "error" in p]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
