"""WebSocket benchmark (how many clients one instance serves, how fast an event reaches them):
handshakes, a reconnect storm, fan-out latency
from the commit, memory per idle subscriber; one txzserver instance (server-threads 2), its own
copy of the Plone template, clients on 127.0.0.1 in CLIENT_PROCESSES processes of their own
(tests.support.wsload: a fixed handshake and a frame reader, no client library).

Usage: python -m tests.bench.fanout [--clients 10000] [--rounds 3] [--out tests/bench/results]
       [--server-src DIR]   (the server from another source tree, e.g. ``git archive`` of an
                             older commit, for a before/after comparison; no cache settings)

What it measures, in order, on one server:
1. connect: ``clients`` anonymous handshakes, all at once (at most 500 in flight per client
   process), until every client has its welcome; the server's RSS before and after gives the
   memory per idle subscriber.
2. fan-out: ``rounds`` times, a Document is published by plone.restapi; each client records
   when the transition event arrived; latency = arrival - the event's ``time``, which is the
   commit time (set after commit by txzserver.plone.eventqueue). p50/p99/max over every
   client of every round.
3. authenticated connect: the clients close, then reconnect with a Member's Basic credentials
   (one Zope lookup, the rest from the principal cache).
4. reconnect storm: every client drops and reconnects at once, a tenth of them with session
   cookies never seen before (one Zope lookup each, in batches on the publisher pool), while
   the Plone front page is fetched one request after the other; page latency max/p99.

Results: ``fanout.json`` is ``{"date", "cores", "python", "clients", "rounds", "provenance"
(tests.bench.provenance.record()), "rows": [...]}``; each row is ``{"what": str, "value":
number, "unit": str, "goal": str or null}`` plus ``"ok": bool`` when there is a goal, e.g.
``{"what": "fan-out p99 from commit, 10000 clients", "value": 0.21, "unit": "s", "goal":
"< 0.25 s", "ok": true}``. ``fanout.md`` is the same as a Markdown table. Like every script of
`make bench` it refuses a dirty tree unless BENCH_ALLOW_DIRTY=1. Loopback only; every phase is
bounded in time.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

from tests.bench import provenance
from tests.support.instance import ADMIN, build_template, copy_instance_data, http_server, new_instance
from tests.support.restapi import add_users
from tests.support.server import ServerProcess
from tests.support.wsload import connect_many

CLIENT_PROCESSES = int(os.environ.get("FANOUT_CLIENT_PROCESSES", "1"))
THREADS = 2
WEBSOCKET = ("<websocket>\n  path /ws\n  max-connections 50000\n  ping-interval 0\n"
             "  principal-cache-ttl 60s\n</websocket>")
MEMBER = ("benchmember", "secret-Passw0rd")
GOALS = {"connect": 5.0, "fanout_p99": 0.25, "kib_per_subscriber": 10.0, "page_max": 1.0}


def log(message):
    print(f"[fanout] {message}", flush=True)


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * p // 100) - 1)]


# Client processes

def client_process(conn, host, port):
    """Runs in a process of its own: commands from ``conn``, answers on it."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_client_main(conn, host, port))


async def _client_main(conn, host, port):
    loop = asyncio.get_running_loop()
    state = {"clients": [], "watch": None, "arrivals": [], "sample": None}

    def on_message(payload, when):
        watch = state["watch"]
        if watch is not None and all(needle in payload for needle in watch):
            state["arrivals"].append(when)
            if state["sample"] is None:
                state["sample"] = payload.decode("utf-8")

    commands = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    while True:
        command, *args = await commands.get()
        if command == "connect":
            count, kind, offset = args
            for client in state["clients"]:
                client.close()
            began, cpu = time.monotonic(), time.process_time()
            clients, failures = await connect_many(host, port, "/Plone/ws", count,
                                                   headers=_headers(kind, offset),
                                                   on_message=on_message, timeout=60)
            state["clients"] = clients
            conn.send({"seconds": time.monotonic() - began, "cpu": time.process_time() - cpu,
                       "connected": len(clients),
                       "failures": failures[:5], "failed": len(failures)})
        elif command == "watch":
            state["watch"] = tuple(needle.encode() for needle in args)
            state["arrivals"], state["sample"] = [], None
            conn.send("ok")
        elif command == "arrivals":
            conn.send({"arrivals": state["arrivals"], "sample": state["sample"]})
        elif command == "stop":
            for client in state["clients"]:
                client.close()
            conn.send("ok")
            return


def _headers(kind, offset):
    import base64
    basic = "Basic " + base64.b64encode(f"{MEMBER[0]}:{MEMBER[1]}".encode()).decode()

    def headers(i):
        if kind == "anonymous":
            return ()
        if kind == "member":
            return (("Authorization", basic),)
        # storm: a tenth with a session cookie never seen before (a Zope lookup each)
        if i % 10 == 0:
            return (("Cookie", f"__ac=storm-{offset}-{i}"),)
        return (("Authorization", basic),) if i % 2 else ()
    return headers


class Clients:
    """CLIENT_PROCESSES client processes, used together."""

    def __init__(self, host, port):
        ctx = multiprocessing.get_context("fork")
        self.conns, self.processes = [], []
        for _ in range(CLIENT_PROCESSES):
            parent, child = ctx.Pipe()
            process = ctx.Process(target=client_process, args=(child, host, port), daemon=True)
            process.start()
            self.conns.append(parent)
            self.processes.append(process)

    def ask(self, *command, timeout=180):
        for conn in self.conns:
            conn.send(command)
        return [self._answer(conn, timeout) for conn in self.conns]

    def connect(self, count, kind, offset=0):
        share = count // len(self.conns)
        for n, conn in enumerate(self.conns):
            conn.send(("connect", share, kind, f"{offset}-{n}"))
        began = time.monotonic()
        answers = [self._answer(conn, 180) for conn in self.conns]
        return time.monotonic() - began, answers

    @staticmethod
    def _answer(conn, timeout):
        if not conn.poll(timeout):
            raise TimeoutError("a client process did not answer")
        return conn.recv()

    def stop(self):
        try:
            self.ask("stop", timeout=30)
        finally:
            for process in self.processes:
                process.join(10)
                if process.is_alive():
                    process.kill()


# Probes

class PageProbe(threading.Thread):
    """GET ``url`` one request after the other until stopped: latencies."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.latencies, self.errors = [], []
        self._stop_event = threading.Event()

    def run(self):
        with httpx.Client(timeout=10) as client:
            while not self._stop_event.is_set():
                began = time.monotonic()
                try:
                    status = client.get(self.url).status_code
                except httpx.HTTPError as exc:
                    status = repr(exc)
                self.latencies.append(time.monotonic() - began)
                if status != 200:
                    self.errors.append(status)

    def stop(self):
        self._stop_event.set()
        self.join(15)
        return self.latencies


def event_time(text):
    return datetime.fromisoformat(json.loads(text)["time"].replace("Z", "+00:00")).timestamp()


# The measurement

def measure(server, clients, count, rounds):
    rows = []

    def row(what, value, unit, goal=None, ok=None):
        entry = {"what": what, "value": value, "unit": unit, "goal": goal}
        if ok is not None:
            entry["ok"] = bool(ok)
        rows.append(entry)
        log(f"{what}: {value} {unit}" + (f" (goal {goal}: {'ok' if ok else 'MISSED'})" if goal else ""))

    rss_before = server.rss()
    seconds, answers = clients.connect(count, "anonymous")
    connected = sum(a["connected"] for a in answers)
    time.sleep(1)
    rss_connected = server.rss()
    kib = (rss_connected - rss_before) / max(connected, 1) / 1024
    row(f"connect {count} anonymous clients", round(seconds, 2), "s", f"< {GOALS['connect']} s",
        seconds < GOALS["connect"] and connected == count)
    row("anonymous clients connected", connected, "clients")
    row("server RSS per idle subscriber", round(kib, 1), "KiB", f"<= {GOALS['kib_per_subscriber']} KiB",
        kib <= GOALS["kib_per_subscriber"])

    latencies, received = [], []
    with httpx.Client(auth=ADMIN, headers={"Accept": "application/json"}, timeout=60) as api:
        for n in range(rounds):
            doc = f"fanout-{n}"
            api.post(server.url("/Plone"), json={"@type": "Document", "id": doc,
                                                 "title": "Fan-out"}).raise_for_status()
            clients.ask("watch", '"transition"', f'"/Plone/{doc}"')
            api.post(server.url(f"/Plone/{doc}/@workflow/publish")).raise_for_status()
            deadline = time.monotonic() + 30
            while True:
                answers = clients.ask("arrivals")
                arrivals = [t for a in answers for t in a["arrivals"]]
                if len(arrivals) >= connected or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            sample = next(a["sample"] for a in answers if a["sample"])
            committed = event_time(sample)
            round_latencies = [t - committed for t in arrivals]
            latencies += round_latencies
            received.append(len(arrivals))
            log(f"round {n + 1}: {len(arrivals)} received, p99 {percentile(round_latencies, 99):.3f} s")
    p99 = percentile(latencies, 99)
    row(f"fan-out p50 from commit, {count} clients", round(percentile(latencies, 50), 3), "s")
    row(f"fan-out p99 from commit, {count} clients", round(p99, 3), "s",
        f"< {GOALS['fanout_p99']} s", p99 < GOALS["fanout_p99"] and min(received) == connected)
    row(f"fan-out max from commit, {count} clients", round(max(latencies), 3), "s")
    row("fan-out events received (all rounds)", sum(received), "messages")

    seconds, answers = clients.connect(count, "member")
    connected = sum(a["connected"] for a in answers)
    row(f"connect {count} authenticated clients (one user, principal cache)", round(seconds, 2), "s",
        f"< {GOALS['connect']} s", seconds < GOALS["connect"] and connected == count)

    probe = PageProbe(server.url("/Plone"))
    probe.start()
    time.sleep(3)  # the page's own latency before the storm
    quiet = list(probe.latencies)
    seconds, answers = clients.connect(count, "storm", offset="s")
    time.sleep(0.5)
    storm = probe.stop()[len(quiet):]
    connected = sum(a["connected"] for a in answers)
    failed = sum(a["failed"] for a in answers)
    page_max = max(storm)
    row("front page p99 before the storm", round(percentile(quiet, 99), 3), "s")
    row(f"reconnect storm: {count} clients (10% with new session cookies)", round(seconds, 2), "s")
    row("reconnect storm: clients connected", connected, "clients")
    row("reconnect storm: clients refused or timed out", failed, "clients")
    row("front page during the storm: requests", len(storm), "requests")
    row("front page during the storm p99", round(percentile(storm, 99), 3), "s")
    row("front page during the storm max", round(page_max, 3), "s", f"< {GOALS['page_max']} s",
        page_max < GOALS["page_max"] and not probe.errors)
    return rows


def markdown(results):
    lines = ["## WebSocket: handshakes, reconnect storm, fan-out from the commit", "",
             f"Run {results['date']} on {results['cores']} cores, Python {results['python']}; one"
             f" txzserver instance (server-threads {THREADS}) and {CLIENT_PROCESSES} client processes on"
             " the same machine (tests/bench/fanout.py; the clients' CPU is part of every time)."
             " Fan-out latency is the arrival at the client minus the event's `time`, the commit time."
             + (f" Server from {results['server_src']}." if results.get("server_src") else ""),
             "", "| What | Value | Goal |", "|---|---:|---|"]
    for r in results["rows"]:
        goal = r["goal"] or ""
        if "ok" in r:
            goal += " ok" if r["ok"] else " **missed**"
        lines.append(f"| {r['what']} | {r['value']} {r['unit']} | {goal} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="tests/bench/results")
    parser.add_argument("--server-src", help="run the server from this source tree (PYTHONPATH)")
    args = parser.parse_args(argv)
    provenance.require_clean()
    record = provenance.record()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.clients // CLIENT_PROCESSES + 100:
        sys.exit(f"open file limit {hard} is too low for {args.clients} clients")
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
               "clients": args.clients, "rounds": args.rounds, "provenance": record}
    with tempfile.TemporaryDirectory(prefix="txz-fanout-") as tmp:
        log("building the Plone template")
        template = build_template(Path(tmp) / "template")
        directory = Path(tmp) / "fanout"
        servers = http_server(0).replace("</http-server>", "  backlog 4096\n</http-server>")
        websocket, env = WEBSOCKET, None
        if args.server_src:
            websocket = "\n".join(line for line in WEBSOCKET.splitlines() if "principal-cache" not in line)
            env = dict(os.environ, PYTHONPATH=str(Path(args.server_src).resolve()))
            results["server_src"] = args.server_src
        conf = new_instance(directory, servers, f"server-threads {THREADS}\n{websocket}\n")
        copy_instance_data(template["directory"], directory)
        server = ServerProcess(conf, env=env).start()
        clients = None
        try:
            httpx.get(server.url("/Plone"), timeout=60)
            add_users(server, {MEMBER[0]: ["Member"]}, MEMBER[1])
            clients = Clients("127.0.0.1", server.port)
            results["rows"] = measure(server, clients, args.clients, args.rounds)
        finally:
            if clients is not None:
                clients.stop()
            server.stop(timeout=60)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fanout.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "fanout.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
