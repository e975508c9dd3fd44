"""The scale model: instances and NATS nodes for 1,000,000 WebSocket subscribers, computed from
the measurements in tests/bench/results/scale.json (tests/bench/scale.py) and the assumptions
below, rendered as scale.md and as docs/performance.md's section between the scale markers. Rendering
reads nothing but scale.json, so tests/unit/test_bench_scale.py can check the page.

    python -m tests.bench.scale_model            # scale.md
    python -m tests.bench.scale_model --docs     # and docs/performance.md's section
    python -m tests.bench.scale_model --check    # exit 1 when docs/performance.md's section is out of date
"""

import json
import math
import sys
from pathlib import Path

from tests.bench.pages import PAGE, RESULTS, Section
from tests.bench.report import _commit, _machine, cell, spread

SECTION = Section("scale", "tests.bench.scale_model", "tests/bench/results/scale.json",
                  "Scale model")

#: What the model assumes; every figure it gives follows from these and scale.json.
SUBSCRIBERS = 1_000_000
INSTANCES = 100  # the deployment asked about: 10,000 WebSocket subscribers on each
EVENT_RATES = (1, 10, 100)  # content events per second on the whole site
INSTANCE_CORES = 2  # CPU of one instance (its Kubernetes limit)
FANOUT_SHARE = 0.5  # of that, what fan-out may take; the rest serves pages and handshakes
NATS_NODE_CORES = 2
NATS_SHARE = 0.5  # headroom: when one node of three is down, the other two carry its share
MIN_NATS_NODES = 3  # JetStream replicas 3 need 3 nodes whatever the load


# -- the figures the model uses -------------------------------------------------------------------

def _median(values):
    found = spread(values)
    return found[0] if found else None


def _bus_points(data, bus, subscribers=None):
    points = [p for p in data["bus"][bus] if "error" not in p]
    if subscribers is None:
        subscribers = max((p["subscribers"] for p in points), default=None)
    return [p for p in points if p["subscribers"] == subscribers]


def inputs(data):
    """The measured figures the model uses: medians over the rounds at the largest point."""
    fanout = [p for p in data["fanout"] if "error" not in p]
    largest = max(p["connections"] for p in fanout)
    nats, zmq = _bus_points(data, "nats"), _bus_points(data, "zmq")
    return {
        "connections": largest,
        "subscriber_cpu": _median([p["cpu_per_event_per_subscriber_s"] for p in fanout
                                   if p["connections"] == largest]),
        "nats_subscribers": nats[0]["subscribers"],
        "nats_cpu_per_delivery": _median([p["server_cpu_per_delivery_s"] for p in nats]),
        "zmq_cpu_per_delivery": _median([p["server_cpu_per_delivery_s"] for p in zmq]),
        "bus_cpu_per_event": _median([p["subscriber_cpu_per_event_s"] for p in nats]),
        "event_bytes": nats[0]["event_bytes"],
    }


def model(found, rate):
    """The deployment for ``rate`` events/s, each to every subscriber (``found``: ``inputs``)."""
    budget = INSTANCE_CORES * FANOUT_SHARE - rate * found["bus_cpu_per_event"]
    capacity = budget / (rate * found["subscriber_cpu"]) if budget > 0 else 0
    instances = max(INSTANCES, math.ceil(SUBSCRIBERS / capacity)) if capacity >= 1 else None
    per_instance = SUBSCRIBERS / (instances or INSTANCES)
    deliveries = rate * (instances or INSTANCES)
    nats_cores = deliveries * found["nats_cpu_per_delivery"]
    return {
        "rate": rate,
        "fanout_cores": rate * per_instance * found["subscriber_cpu"],
        "capacity": int(capacity), "instances": instances,
        "deliveries": deliveries, "bus_bytes": deliveries * found["event_bytes"],
        "nats_cores": nats_cores,
        "nats_nodes": max(MIN_NATS_NODES, math.ceil(nats_cores / (NATS_NODE_CORES * NATS_SHARE))),
        "zmq_cores": deliveries * found["zmq_cpu_per_delivery"],
    }


# -- text ---------------------------------------------------------------------------------------

def micro(values):
    """Median (min-max) of seconds as microseconds: ``17.2 µs (16.8-19.0)``."""
    found = spread(values)
    if found is None:
        return "-"
    median, low, high = (f"{v * 1e6:.1f}" for v in found)
    return f"{median} µs" if low == high else f"{median} µs ({low}-{high})"


def _n(value):
    return f"{value:,.0f}"


def measured(data):
    prov = data["provenance"]
    loads = [p["loadavg_1min"] for points in data["bus"].values() for p in points]
    loads += [p["loadavg_1min"] for p in data["fanout"]]
    lines = [
        f"Measured by `python -m tests.bench.scale` (`make bench`) on {prov['date']}, commit "
        f"{_commit(prov)}, on {_machine(prov)}; {data['rounds']} "
        f"round{'s' if data['rounds'] != 1 else ''} (the buses alternate which goes first), "
        f"{data.get('total_seconds', 0) / 60:.0f} min. A cell is the median of the rounds "
        "with the min-max in brackets. Clients, bus servers and the fan-out share the "
        "machine's cores, and other work on the machine shows in every figure: the 1-min load "
        f"average at the start of the points was {cell(loads, 'load')} (it counts the "
        "subscriber processes of the points before). The CPU times per delivery and per "
        "subscriber are what the model uses: unlike the rates, they hardly depend on how busy "
        "the machine is.", "",
        f"**Bus throughput.** One publisher sends {data['events']:,} events "
        "(the wire form of a Plone `modified` event) as fast as the bus takes them; each "
        "subscribing process decodes every one (`from_wire`), as an instance does. ZeroMQ: a real "
        "`txzserver broker` over loopback tcp (`curve off`). NATS: one real nats-server, a "
        "JetStream stream, each event published with `Nats-Msg-Id` (publish acknowledgements "
        "awaited, 4,000 in flight), each process a durable pull consumer (as the nats backend: "
        "batches of 256, every message acknowledged, ack wait 30 s, 20,000 unacknowledged at "
        "most). Events/s: events over first send to last receipt; deliveries: times the "
        "processes, each event once. Server CPU: the broker's or nats-server's own CPU time "
        "(`/proc`) per delivery. Redelivered: messages a consumer got again, summed over the "
        "rounds (JetStream sends again what was not acknowledged within its ack wait; an "
        "instance drops them by event id).",
        "",
        "| Bus | Subscribing processes | Events/s | Deliveries/s | Server CPU per delivery "
        "| Subscriber CPU per message | Delivered | Redelivered |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for bus, points in data["bus"].items():
        for count in sorted({p["subscribers"] for p in points if "error" not in p}):
            ok = _bus_points(data, bus, count)
            share = min(p["delivered_share"] for p in ok)
            lines.append(
                f"| {bus} | {count} | {cell([p['events_per_s'] for p in ok])} "
                f"| {cell([p['deliveries_per_s'] for p in ok])} "
                f"| {micro([p['server_cpu_per_delivery_s'] for p in ok])} "
                f"| {micro([p['subscriber_cpu_per_event_s'] for p in ok])} | {share:.0%} "
                f"| {sum(p.get('redelivered', 0) for p in ok):,} |")
        failed = [p for p in points if "error" in p]
        if failed:
            lines.append(f"| {bus} | failed | {len(failed)} point(s): {failed[0]['error'][:80]} "
                         "| | | | | |")
    lines += [
        "", f"**Fan-out per subscriber.** One `Hub` of a `NotificationService` (its real send "
        f"batch, two threads) with N open NotificationProtocol connections, each a real loopback "
        f"TCP connection read by another process; {data['hub_users']} users' token sets, every "
        f"connection allowed every event (the worst case). {data['hub_events']} events delivered "
        "one by one; CPU is this process's `process_time` (both threads and the kernel's send "
        "work, which on loopback includes the receiving TCP side) per event per connection.", "",
        "| Connections | CPU per event per subscriber | One delivery (wall) |",
        "|---:|---:|---:|",
    ]
    for count in sorted({p["connections"] for p in data["fanout"] if "error" not in p}):
        ok = [p for p in data["fanout"] if "error" not in p and p["connections"] == count]
        lines.append(f"| {count:,} | {micro([p['cpu_per_event_per_subscriber_s'] for p in ok])} "
                     f"| {cell([p['wall_per_event_s'] for p in ok], 's')} |")
    return lines


def assumptions(found):
    return [
        "**Assumptions.** "
        f"{SUBSCRIBERS:,} WebSocket subscribers on {INSTANCES} instances ({SUBSCRIBERS // INSTANCES:,} "
        "each), more instances when one cannot carry its share; every event goes to every "
        "subscriber (all subscribed to the site root and allowed to see it: the worst case; "
        "guards and paths only lower the cost); an instance has "
        f"{INSTANCE_CORES} cores of which fan-out may take {FANOUT_SHARE:.0%}, the rest serving pages "
        f"and handshakes; the fan-out cost per subscriber is the one measured at "
        f"{found['connections']:,} connections, and each instance also spends the measured NATS "
        "subscriber CPU per event; the bus delivers each event once to each instance (bus fan-out "
        f"= instances), {found['event_bytes']} bytes on the wire (headers and framing not "
        f"counted); a NATS node has {NATS_NODE_CORES} cores of which the server may use "
        f"{NATS_SHARE:.0%} (a node down leaves its share to the others), its CPU per delivery "
        f"the one measured with {found['nats_subscribers']} consumers on one node (publish, "
        f"store, deliver and acknowledgements), at least {MIN_NATS_NODES} nodes (JetStream "
        "replicas 3; storing each event three times is one write per event per node, small "
        "beside the deliveries). The loopback figures leave out the network; the fan-out figure "
        "counts the receiving side's TCP work, which a real network moves to the clients.",
    ]


def table(found):
    lines = [
        "| Events/s (each to every subscriber) | Fan-out CPU per instance | Subscribers one "
        "instance carries | Instances | Bus deliveries/s | Bus traffic | NATS CPU | NATS nodes "
        "| ZeroMQ broker CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in EVENT_RATES:
        m = model(found, rate)
        instances = _n(m["instances"]) if m["instances"] else "none carries it"
        lines.append(
            f"| {rate} | {m['fanout_cores']:.2f} cores | {_n(m['capacity'])} | {instances} "
            f"| {_n(m['deliveries'])} | {m['bus_bytes'] / 1e6:.2f} MB/s | {m['nats_cores']:.2f} cores "
            f"| {m['nats_nodes']} | {m['zmq_cores']:.2f} cores |")
    return lines


def top_rate(found):
    """The highest event rate at which INSTANCES instances carry every subscriber."""
    per_instance = SUBSCRIBERS / INSTANCES
    return INSTANCE_CORES * FANOUT_SHARE / (per_instance * found["subscriber_cpu"]
                                            + found["bus_cpu_per_event"])


def verdict(found):
    last = model(found, EVENT_RATES[-1])
    instances = _n(last["instances"]) if last["instances"] else "no number of"
    return [
        "Fan-out CPU per instance is for the subscribers each instance carries at that rate; "
        "\"Subscribers one instance carries\" is what its fan-out share allows. With these "
        f"figures {INSTANCES} instances carry {SUBSCRIBERS:,} subscribers up to "
        f"{top_rate(found):.1f} events/s; above that the instances needed grow with the rate "
        f"(at {last['rate']} events/s, {instances} instances), while the bus needs "
        f"{last['nats_nodes']} NATS node{'s' if last['nats_nodes'] != 1 else ''} "
        f"({last['nats_cores']:.1f} cores of nats-server) for their "
        f"{_n(last['deliveries'])} deliveries/s."]


def body(data, level):
    if data is None:
        return "No scale.json: run `python -m tests.bench.scale`.\n"
    found = inputs(data)
    lines = measured(data) + [""] + [f"{'#' * level} The model", ""] + assumptions(found)
    lines += ["", *table(found), "", *verdict(found)]
    return "\n".join(lines) + "\n"


def load(out=RESULTS):
    path = Path(out) / "scale.json"
    return json.loads(path.read_text()) if path.exists() else None


def page_section(data):
    return body(data, 4)


def page_parts(text):
    """(before, section, after) of the page's text around the scale markers."""
    return SECTION.parts(text)


def write_all(out=RESULTS, readme=False):
    """scale.md and (with ``readme``) docs/performance.md's section; returns scale.md's text."""
    data = load(out)
    text = "# Scale model (`python -m tests.bench.scale`)\n\n" + body(data, 2)
    (Path(out) / "scale.md").write_text(text)
    if readme:
        SECTION.write(page_section(data), PAGE)
    return text


def main(argv=None):
    return SECTION.main(argv, __doc__, write_all, lambda out: page_section(load(out)))


if __name__ == "__main__":
    sys.exit(main())
