"""Event bus throughput, plain tcp beside CURVE: what authentication costs the fan-out between
instances. A real `txzserver broker` on loopback tcp (``--curve off``, then CURVE with keys of
`txzserver buskeys`), one publisher sending ``events`` Plone-sized events as fast as the bus
takes them, ``subscribers`` processes of their own each reading and decoding every event as an
instance does (``from_wire``); rounds alternate plain and CURVE.

Usage: python -m tests.bench.bus [--events 100000] [--subscribers 2] [--rounds 3]
       [--out tests/bench/results]

Result: messages delivered per second (sum over subscribers, first send to last receipt),
median of the rounds per variant, and CURVE's cost in percent of plain (goal: at most 10%).
``bus.json`` and ``bus.md`` in ``--out``. Loopback only; every wait is bounded.
"""

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from tests.support.instance import TXZSERVER
from tests.support.server import free_port
from txzserver.bus import Event
from txzserver.bus.message import from_wire
from txzserver.bus.security import BusLimits, ClientSecurity

GOAL_PERCENT = 10.0
END = b"end"


def security(keys, name, limits):
    if keys is None:
        return ClientSecurity(limits)
    return ClientSecurity.load(str(keys / "broker.key"), str(keys / f"{name}.key_secret"), limits)


def subscriber(endpoint, keys, limits, ready, conn):
    """Count and decode events until END; send (count, time of the last receipt)."""
    ctx = zmq.Context()
    sub = security(keys, "instance", limits).socket(ctx, zmq.SUB, endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    count, last = 0, None
    while True:
        if not sub.poll(60000):
            break
        data = sub.recv()
        if data == b"probe":
            ready.set()
            continue
        if data == END:
            break
        from_wire(data)
        count += 1
        last = time.monotonic()
    conn.send((count, last))
    sub.close(linger=0)
    ctx.term()


def one_round(variant, directory, events, subscribers):
    keys = directory / "keys" if variant == "curve" else None
    limits = BusLimits(high_water_mark=events + 1000)
    ports = (free_port(), free_port())
    front, back = (f"tcp://127.0.0.1:{port}" for port in ports)
    argv = [TXZSERVER, "broker", "--frontend", front, "--backend", back, "--no-tasks",
            "--high-water-mark", str(events + 1000)]
    argv += (["--curve-secret-key", str(keys / "broker.key_secret"), "--curve-allow",
              str(directory / "allowed")] if keys else ["--curve", "off"])
    broker = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = zmq.Context()
    pub = security(keys, "instance", limits).socket(ctx, zmq.PUB, front)
    pub.connect(front)
    procs = []
    try:
        for _ in range(subscribers):
            ready, (mine, theirs) = multiprocessing.Event(), multiprocessing.Pipe()
            proc = multiprocessing.Process(target=subscriber, args=(back, keys, limits, ready, theirs))
            proc.start()
            procs.append((proc, ready, mine))
        deadline = time.monotonic() + 60
        while not all(ready.is_set() for _, ready, _ in procs):
            assert time.monotonic() < deadline, "subscribers did not join"
            pub.send(b"probe")
            time.sleep(0.05)
        time.sleep(0.2)  # the last probes drain
        event = Event("modified", "/Plone/news/a-rather-ordinary-news-item", uid="a" * 32,
                      url="http://localhost:8080/Plone/news/a-rather-ordinary-news-item",
                      title="A rather ordinary news item", portal_type="News Item",
                      review_state="published", actor="editor@example.org",
                      time="2026-12-06T13:00:00+00:00", guard={"Anonymous", "Member", "Manager"},
                      instance="bench", epoch="0123456789abcdef")
        wires = [event.stamped("bench", "0123456789abcdef", seq).to_wire()
                 for seq in range(1, events + 1)]
        began = time.monotonic()
        for data in wires:
            pub.send(data)
        pub.send(END)
        results = [mine.recv() if mine.poll(120) else (0, None) for _, _, mine in procs]
    finally:
        for proc, _, _ in procs:
            proc.join(10)
        pub.close(linger=0)
        ctx.term()
        broker.terminate()
        broker.wait(30)
    received = sum(count for count, _ in results)
    ended = max(last for _, last in results if last is not None)
    return received / (ended - began), received / (events * subscribers)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100000)
    parser.add_argument("--subscribers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="tests/bench/results")
    args = parser.parse_args(argv)
    rates = {"plain": [], "curve": []}
    delivered = {"plain": [], "curve": []}
    with tempfile.TemporaryDirectory(prefix="txz-bus-") as tmp:
        directory = Path(tmp)
        for name in ("broker", "instance"):
            subprocess.run([TXZSERVER, "buskeys", str(directory / "keys"), name], check=True,
                           capture_output=True)
        (directory / "allowed").mkdir()
        (directory / "allowed" / "instance.key").write_bytes(
            (directory / "keys" / "instance.key").read_bytes())
        for round_ in range(args.rounds):
            # each variant goes first every other round: no warm-up favours one
            for variant in ("plain", "curve")[::1 if round_ % 2 == 0 else -1]:
                rate, share = one_round(variant, directory, args.events, args.subscribers)
                rates[variant].append(rate)
                delivered[variant].append(share)
                print(f"round {round_ + 1} {variant}: {rate:,.0f} events/s delivered"
                      f" ({share:.1%} of those sent)", file=sys.stderr)
    plain, curve = (statistics.median(rates[v]) for v in ("plain", "curve"))
    cost = 100.0 * (plain - curve) / plain
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "events": args.events,
               "subscribers": args.subscribers, "rounds": args.rounds,
               "plain_events_per_s": round(plain), "curve_events_per_s": round(curve),
               "delivered_share": {v: min(s) for v, s in delivered.items()},
               "curve_cost_percent": round(cost, 1), "goal": f"<= {GOAL_PERCENT:g}%",
               "ok": cost <= GOAL_PERCENT}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bus.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "bus.md").write_text(
        "| bus over loopback tcp | events/s delivered | goal |\n|---|---|---|\n"
        f"| plain (`curve off`) | {plain:,.0f} | |\n"
        f"| CURVE | {curve:,.0f} | cost {cost:.1f}% (<= {GOAL_PERCENT:g}%) |\n")
    print(json.dumps(results, indent=2))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
