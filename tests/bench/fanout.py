"""Fan-out benchmark: N WebSocket clients on one instance, one event, time until 99% have it.

Usage: python -m tests.bench.fanout [--clients 10000] [--out tests/bench/results]
Writes fanout.json and fanout.md next to the other results. Loopback only, bounded in time.
"""

import argparse
import asyncio
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.instance import ADMIN, build_template, copy_instance_data, http_server, new_instance
from tests.support.server import ServerProcess

WEBSOCKET = "<websocket>\n  path /ws\n  max-connections 50000\n  ping-interval 0\n</websocket>"


def log(message):
    print(f"[fanout] {message}", flush=True)


async def open_clients(url, count, concurrency):
    import websockets

    gate = asyncio.Semaphore(concurrency)
    clients = []

    async def one():
        async with gate:
            ws = await websockets.connect(url, open_timeout=120, ping_interval=None, max_queue=None)
            await ws.recv()  # welcome: the server holds this client in its hub now
            clients.append(ws)

    await asyncio.gather(*(one() for _ in range(count)))
    return clients


async def wait_event(clients, path, deadline):
    arrivals = []

    async def one(ws):
        while True:
            message = json.loads(await ws.recv())
            if message.get("path") == path and message.get("type") == "transition":
                arrivals.append(time.monotonic())
                return

    tasks = [asyncio.create_task(one(ws)) for ws in clients]
    await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 1))
    for task in tasks:
        task.cancel()
    return arrivals


async def measure(server, count, concurrency):
    url = server.url("/Plone/ws").replace("http://", "ws://")
    rss_before = server.rss()
    began = time.monotonic()
    clients = await open_clients(url, count, concurrency)
    connect_seconds = time.monotonic() - began
    rss_connected = server.rss()
    log(f"{count} clients connected in {connect_seconds:.1f} s; server RSS "
        f"{rss_before / 2**20:.0f} -> {rss_connected / 2**20:.0f} MiB")
    async with httpx.AsyncClient(auth=ADMIN, headers={"Accept": "application/json"}, timeout=60) as api:
        response = await api.post(server.url("/Plone"), json={"@type": "Document", "id": "fanout",
                                                               "title": "Fan-out"})
        response.raise_for_status()
        waiter = asyncio.create_task(wait_event(clients, "/Plone/fanout", time.monotonic() + 120))
        sent = time.monotonic()
        response = await api.post(server.url("/Plone/fanout/@workflow/publish"))
        committed = time.monotonic()
        response.raise_for_status()
        arrivals = sorted(await waiter)
    for ws in clients:
        await ws.close()
    received = len(arrivals)
    p99_index = max(int(count * 0.99) - 1, 0)
    result = {
        "clients": count,
        "connect_seconds": round(connect_seconds, 2),
        "rss_before_mib": round(rss_before / 2**20, 1),
        "rss_connected_mib": round(rss_connected / 2**20, 1),
        "kib_per_connection": round((rss_connected - rss_before) / count / 1024, 1),
        "received": received,
        "publish_request_seconds": round(committed - sent, 3),
    }
    if received > p99_index:
        result["p99_after_request_sent_seconds"] = round(arrivals[p99_index] - sent, 3)
        result["last_after_request_sent_seconds"] = round(arrivals[-1] - sent, 3)
    return result


def markdown(results):
    lines = ["## Fan-out: one event to N WebSocket clients on one instance", "",
             f"Run {results['date']} on {results['cores']} cores, Python {results['python']}; clients"
             " and server on the same machine (the client's own CPU is part of the time). The event is"
             " a workflow transition visible to Anonymous; the clock starts when the publish request"
             " is sent (it includes the Zope transaction and commit; events go out after commit, before the"
             " HTTP response, so they can arrive before the publish request returns).", "",
             "| Clients | Connect all | RSS per connection | Received | 99% received | all received |"
             " publish request |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        lines.append(f"| {r['clients']} | {r['connect_seconds']} s | {r['kib_per_connection']} KiB |"
                     f" {r['received']} | {r.get('p99_after_request_sent_seconds', 'n/a')} s |"
                     f" {r.get('last_after_request_sent_seconds', 'n/a')} s |"
                     f" {r['publish_request_seconds']} s |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--out", default="tests/bench/results")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(args.clients) + 100:
        sys.exit(f"open file limit {hard} is too low for {max(args.clients)} clients")
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "cores": len(__import__("os").sched_getaffinity(0)),
               "python": platform.python_version(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="txz-fanout-") as tmp:
        log("building the Plone template")
        template = build_template(Path(tmp) / "template")
        for count in args.clients:
            directory = Path(tmp) / f"fanout-{count}"
            conf = new_instance(directory, http_server(0), f"server-threads 2\n{WEBSOCKET}\n")
            copy_instance_data(template["directory"], directory)
            server = ServerProcess(conf).start()
            try:
                httpx.get(server.url("/Plone"), timeout=60)
                results["runs"].append(asyncio.run(measure(server, count, args.concurrency)))
                log(json.dumps(results["runs"][-1]))
            finally:
                server.stop(timeout=60)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fanout.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "fanout.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
