"""The benchmark report: results.md, starvation.png and docs/performance.md's measured section, all
rendered from the JSON files in tests/bench/results (results.json from run.py, h2download.json,
tasks.json, fanout.json). Rendering reads nothing else, so the page's section can be checked
against the committed results (tests/unit/test_bench_report.py).

    python -m tests.bench.report            # results.md and starvation.png
    python -m tests.bench.report --docs     # and the section between docs/performance.md's bench markers
    python -m tests.bench.report --check    # exit 1 when docs/performance.md's section is out of date
"""

import json
import statistics
import sys
from pathlib import Path

from tests.bench.pages import PAGE, RESULTS, Section

SECTION = Section("bench", "tests.bench.report", "tests/bench/results/*.json", "measured")
PLOT = "starvation.png"
SOURCES = ("results", "h2download", "h3readers", "syscalls", "threads", "tasks", "fanout")
MB = 1024 * 1024


# -- numbers -> text -------------------------------------------------------------------------

def spread(values):
    """(median, min, max) of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def _number_format(kind, high):
    """(unit, value -> text) for one cell whose largest value is ``high``."""
    if kind == "s":
        if high < 1:
            return "ms", lambda v: f"{v * 1000:.0f}"
        return "s", lambda v: f"{v:.1f}"
    if kind == "mib":
        return "MiB", lambda v: f"{v / MB:.1f}"
    if kind == "load":
        return "", lambda v: f"{v:.1f}"
    if kind == "gbps":
        return "GB/s", lambda v: f"{v:.2f}"
    if kind == "ms":
        return "ms", lambda v: f"{v:.2f}"
    if kind == "2":
        return "", lambda v: f"{v:.2f}"
    return "", lambda v: f"{v:.0f}"


def cell(values, kind="n"):
    """Median and min-max of ``values`` as one table cell: ``104 ms (98-130)``; one value alone.

    kind: "s" seconds (ms when all are below 1 s), "n" a count or rate, "mib" bytes as MiB,
    "load" a load average, "gbps" a rate in GB/s, "ms" milliseconds as given, "2" two decimals.
    """
    found = spread(values)
    if found is None:
        return "-"
    median, low, high = found
    unit, text = _number_format(kind, high)
    suffix = f" {unit}" if unit else ""
    if text(low) == text(high):
        return f"{text(median)}{suffix}"
    return f"{text(median)}{suffix} ({text(low)}-{text(high)})"


# -- the sources -------------------------------------------------------------------------------

def load(out=RESULTS):
    """{source: parsed JSON or None} for the files of a `make bench` run in ``out``."""
    data = {}
    for name in SOURCES:
        path = Path(out) / f"{name}.json"
        data[name] = json.loads(path.read_text()) if path.exists() else None
    return data


def write_json(results, path):
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def write_step(results, name, render, out=RESULTS):
    """A `make bench` step's end: ``name``.json in ``out``, and its tables printed as
    results.md will show them (``render``: this module's function for the step)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(results, out / f"{name}.json")
    print()
    print("\n".join(render({name: results}, 2)))


#: Kinds of entries that are limits the servers are measured against, not servers.
LIMITS = ("inprocess", "ceiling")


def _servers(run):
    """The entries of ``run`` that are HTTP servers (not the in-process or loopback limit)."""
    return [s for s in run["servers"].values() if s.get("kind") not in LIMITS]


def _in_process(run):
    """The in-process limit's entry of ``run``, or None when it was not measured."""
    return next((s for s in run["servers"].values() if s.get("kind") == "inprocess"), None)


def _h(level, text):
    return f"{'#' * level} {text}"


def _commit(provenance):
    commit = (provenance.get("commit") or "unknown")[:12]
    if provenance.get("dirty"):
        return (f"**{commit} + uncommitted changes (NOT A CLEAN COMMIT: "
                f"{', '.join(provenance['dirty'][:5])}{' ...' if len(provenance['dirty']) > 5 else ''})**")
    return commit


def _machine(provenance):
    m, v = provenance["machine"], provenance["versions"]
    ram = f"{m['ram_bytes'] / 2**30:.0f} GiB RAM" if m.get("ram_bytes") else "RAM unknown"
    return (f"{m['cores']} cores ({m.get('cpu') or 'CPU unknown'}), {ram}, {m['os']}, "
            f"Python {m['python']}; txzserver {v.get('txzserver')}, Twisted {v.get('Twisted')}, "
            f"waitress {v.get('waitress')}, Zope {v.get('Zope')}, "
            f"Plone (Products.CMFPlone) {v.get('Products.CMFPlone')}")


def intro(data):
    run = data["results"]
    if run is None:
        return ["No results.json: run `make bench`."]
    meta, prov = run["meta"], run["meta"]["provenance"]
    servers = [s["label"] for s in _servers(run)]
    limit = _in_process(run)
    loads = [r["loadavg_start"] for s in run["servers"].values() for r in s["runs"] if "loadavg_start" in r]
    lines = [
        f"Measured by `make bench` on {prov['date']}, commit {_commit(prov)}, on {_machine(prov)}. "
        f"1-min load average at the start of each server's runs: {cell(loads, 'load')}; the "
        f"server comparison took {meta.get('total_seconds', 0) / 60:.0f} min.",
        "",
        f"Servers: {'; '.join(servers)}; each the same Zope app and the same Plone site "
        f"(a fresh copy of one template with a {meta['file_size'] // MB} MiB File per run), on "
        "127.0.0.1 with the clients on the same machine, so the clients' CPU is part of every "
        f"figure. The servers run in alternation ({', '.join(meta['order'] * 2)}, ...), "
        f"{meta['rounds']} round{'s' if meta['rounds'] != 1 else ''}, one server at a time; "
        "a cell is the median of the rounds with the min-max in brackets."
        + (f" {limit['label']} is Zope's WSGI app called by the benchmark itself, one request "
           "after the other, with no server and no HTTP: the limit every server's requests/s are "
           "measured against." if limit else ""),
    ]
    if meta.get("non_defaults"):
        lines += ["", f"**A trial run, not `make bench` as it stands: {' '.join(meta['non_defaults'])}.**"]
    if meta.get("changed_during_run"):
        now = _commit(meta["changed_during_run"])
        lines += ["", f"**The tree changed during the run.** At its end: {now}."]
    for name in SOURCES[1:]:
        other = data[name].get("provenance") if isinstance(data[name], dict) else None
        if other and (other["commit"], bool(other["dirty"])) != (prov["commit"], bool(prov["dirty"])):
            lines += ["", f"**{name}.json was measured at another commit "
                          f"({_commit(other)}, {other['date']}).**"]
    return lines


def starvation(data, level, image):
    run = data["results"]
    if run is None:
        return []
    meta = run["meta"]
    lines = [
        _h(level, "Page latency while slow clients download"), "",
        f"Each slow reader downloads the {meta['file_size'] // MB} MiB File at "
        f"{meta['reader_rate_mib']:g} MiB/s while `/{meta['site']}` (the front page) is requested "
        f"one after the other on new connections for {meta['phase_seconds']:g} s with a "
        f"{meta['timeout']:g} s timeout (a timed-out request counts as its elapsed time). Every server "
        f"publishes with {meta['threads']} threads, the plone-backend default. \"Served\" is how many "
        "downloads the server had started.", "",
        "| Server | Slow readers | Served | Page p50 | Page p99 | Timeouts | Requests |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for server in _servers(run):
        for readers in meta["readers"]:
            phases = [p for r in server["runs"] for p in r.get("starvation", []) if p["readers"] == readers]
            if not phases:
                lines.append(f"| {server['label']} | {readers} | failed | | | | |")
                continue
            probe = [p["front_page"] for p in phases]
            lines.append(
                f"| {server['label']} | {readers} | {cell([p['readers_served'] for p in phases])} "
                f"| {cell([p['p50_s'] for p in probe], 's')} | {cell([p['p99_s'] for p in probe], 's')} "
                f"| {cell([p['timeouts'] for p in probe])} | {cell([p['requests'] for p in probe])} |")
    lines += ["", f"![Page latency against slow readers]({image})"]
    return lines


def rates(data, level):
    run = data["results"]
    if run is None:
        return []
    meta = run["meta"]
    lines = [
        _h(level, "Requests per second"), "",
        f"h2load, {meta['rate_clients']} connections with one request in flight on each, "
        f"{meta['rate_seconds']:g} s after 1 s of warm-up; `@@ok` is Plone's smallest view, the page "
        "is the front page. HTTP/2 is h2c (prior knowledge): waitress has no HTTP/2. p50/p99 over "
        "the requests answered with 200. \"Of the limit\" is the median requests/s as a share of "
        "the in-process limit's for the same page.", "",
        "| Server | Request | Protocol | Requests/s | Of the limit | p50 | p99 | Failed |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    limits = {}
    for limit in filter(None, [_in_process(run)]):
        for r in limit["runs"]:
            for key, found in r.get("rates", {}).items():
                limits.setdefault(key.split(" ", 1)[0], []).append(found["requests_per_s"])
    for server in run["servers"].values():
        keys = []
        for r in server["runs"]:
            keys += [k for k in r.get("rates", {}) if k not in keys]
        for key in keys:
            found = [r["rates"][key] for r in server["runs"] if key in r.get("rates", {})]
            ok = [f for f in found if "error" not in f]
            what, protocol = key.split(" ", 1)
            if not ok:
                lines.append(f"| {server['label']} | {what} | {protocol} | failed | | | | |")
                continue
            rate = [f["requests_per_s"] for f in ok]
            share = (f"{100 * statistics.median(rate) / statistics.median(limits[what]):.0f}%"
                     if limits.get(what) else "-")
            failed = cell([f.get("failed", 0) + (f.get("non_2xx") or 0) for f in ok])
            lines.append(
                f"| {server['label']} | {what} | {protocol} | {cell(rate)} | {share} "
                f"| {cell([f['p50_s'] for f in ok], 's')} | {cell([f['p99_s'] for f in ok], 's')} "
                f"| {failed} |")
    return lines


def idle(data, level):
    run = data["results"]
    if run is None:
        return []
    meta = run["meta"]
    lines = [
        _h(level, "Idle keep-alive connections"), "",
        f"{meta['idle_connections']} HTTP/1.1 connections opened together, one `@@ok` on each "
        f"(answered within 5 s or not at all), then left idle for {meta['idle_seconds']:g} s; "
        "every server with its default limits (txzserver `max-connections` 1000, "
        "waitress `connection_limit` 100, granian `backlog` 1024).", "",
        "| Server | Answered | Held idle | Server RSS growth |",
        "|---|---:|---:|---:|",
    ]
    for server in _servers(run):
        found = [r["idle"] for r in server["runs"] if "answered" in r.get("idle", {})]
        if not found:
            lines.append(f"| {server['label']} | failed | | |")
            continue
        lines.append(f"| {server['label']} | {cell([f['answered'] for f in found])} "
                     f"| {cell([f['held'] for f in found])} "
                     f"| {cell([f['rss_held'] - f['rss_before'] for f in found], 'mib')} |")
    return lines


def server_downloads(data, level):
    run = data["results"]
    if run is None:
        return []
    limit = [s for s in run["servers"].values() if s.get("kind") == "ceiling"]
    if not any("downloads" in r for s in _servers(run) + limit for r in s["runs"]):
        return []
    meta = run["meta"]
    lines = [
        _h(level, f"Downloads of the {meta['file_size'] // MB} MiB File"), "",
        f"One h2load client fetches the File whole, {meta.get('downloads', '?')} times per protocol "
        "and round after one download not counted; GB/s is 10^9 bytes over h2load's wall time. "
        "\"Of granian\" compares the medians over the same protocol. Server CPU is the user and "
        "system time of the server's processes per GiB sent: on a shared machine it varies less "
        "than the rate. The loopback limit is the blob file sent to the same client by a blocking "
        "server of a few lines (`tests/bench/ceiling.py`), with sendfile or read and write.", "",
        "| Server | Protocol | GB/s | Of granian | Server CPU per GiB |",
        "|---|---|---:|---:|---:|",
    ]
    rows, medians = [], {}
    for server in _servers(run) + limit:
        found = {}
        for r in server["runs"]:
            for protocol, d in r.get("downloads", {}).items():
                entry = found.setdefault(protocol, {"gb_per_s": [], "cpu_s_per_gib": []})
                for key in entry:
                    entry[key] += d.get(key, []) if isinstance(d, dict) else []
        for protocol, entry in found.items():
            if entry["gb_per_s"]:
                medians[(server.get("kind"), protocol)] = statistics.median(entry["gb_per_s"])
            rows.append((server, protocol, entry))
    for server, protocol, entry in rows:
        if not entry["gb_per_s"]:
            lines.append(f"| {server['label']} | {protocol} | failed | | |")
            continue
        base = medians.get(("granian", protocol))
        share = f"{statistics.median(entry['gb_per_s']) / base:.2f}x" if base else "-"
        cpu = cell(entry["cpu_s_per_gib"], "s")
        lines.append(f"| {server['label']} | {protocol} | {cell(entry['gb_per_s'], 'gbps')} | {share} "
                     f"| {cpu} |")
    return lines


def downloads(data, level):
    lines = [_h(level, "HTTP/1.1, HTTP/2 and HTTP/3 downloads (txzserver)"), ""]
    found = data["h2download"]
    if found is None:
        return lines + ["No h2download.json: run `python -m tests.bench.h2download`."]
    protocols = [k for k in found["protocols"]]
    baseline = found["baseline"]
    lines += [
        f"The {found['file_size'] // MB} MiB File fetched by one client over each protocol in "
        f"turn ({', '.join(protocols)}, then again), {found['rounds']} rounds, from one txzserver "
        "with a cleartext (h2c) and a TLS (ALPN) listener: h2load over TCP; over QUIC libcurl "
        "(curl_cffi's build: ngtcp2 and nghttp3, in C like h2load) and aioquic's client (Python, "
        "on the same cores: more CPU per GiB than the server). MiB/s is the size over the client's "
        "wall time; server CPU is the server process's user and system time per GiB sent. "
        "HTTP/2 is compared with HTTP/1.1 on the same transport, HTTP/3 with h2 over TLS by the "
        "same client where there is one (libcurl's HTTP/3 with libcurl's HTTP/2; aioquic has no "
        "HTTP/2 client: h2load's).", "",
        "| Protocol | MiB/s | Compared with | Server CPU per GiB | Peak server RSS |",
        "|---|---:|---:|---:|---:|",
    ]
    for label in protocols:
        r = found["protocols"][label]
        base = statistics.median(found["protocols"][baseline[label]]["runs"])
        share = 100 * statistics.median(r["runs"]) / base if base else 0
        cpu = cell(r.get("cpu_s_per_gib", []), "s")
        lines.append(f"| {label} | {cell(r['runs'])} | {share:.0f}% of {baseline[label]} | {cpu}"
                     f" | {r['rss_peak_mib']:.0f} MiB |")
    return lines


def h3readers(data, level):
    found = data["h3readers"]
    if found is None:
        return []  # measured by `make bench` from the commit that added it on
    rounds = found.get("rounds", 1)
    lines = [_h(level, "Slow HTTP/3 readers (txzserver)"), ""]
    lines += [
        f"The front page (HTTP/1.1 over TLS) fetched one request after the other for "
        f"{found['phase_seconds']:g} s, alone, beside HTTP/1.1 connections over TLS each reading "
        f"the {found['file_size'] // MB} MiB File at {found['reader_rate_mib']:g} MiB/s (TCP "
        "backpressure), and beside as many QUIC connections taking it at the same rate (aioquic "
        "clients whose stream window grows at that rate in steps, in a process of their own); "
        f"`server-threads 2`" + (f"; {rounds} rounds in alternating order. " if rounds > 1 else ". ")
        + "The reactor's CPU is its thread's user and system time over the phase (pages and readers "
        "together), and per MiB the readers took meanwhile.", "",
        "| Readers | Pages (200) | Failed | p50 | p99 | Timeouts | MiB read | Reactor CPU "
        "| Reactor per MiB | Peak server RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups = {}
    for phase in found["phases"]:
        # results from before the HTTP/1.1 phase name no kind: their readers were HTTP/3
        kind = phase.get("kind", "HTTP/3" if phase["readers"] else "none")
        groups.setdefault(f"{phase['readers']} {kind}" if phase["readers"] else "none", []).append(phase)
    for readers, phases in groups.items():
        probes = [p["front_page"] for p in phases]
        share = [100 * p["reactor_cpu_share"] for p in phases if p.get("reactor_cpu_share") is not None]
        per_mib = [p.get("reactor_ms_per_mib") for p in phases]
        lines.append(
            f"| {readers} | {cell([p['ok'] for p in probes])} "
            f"| {cell([p['requests'] - p['ok'] - p['timeouts'] for p in probes])} "
            f"| {cell([p['p50_s'] for p in probes], 's')} | {cell([p['p99_s'] for p in probes], 's')} "
            f"| {cell([p['timeouts'] for p in probes])} | {cell([p['reader_mib'] for p in phases], 'load')} "
            f"| {cell(share) + '%' if share else '-'} | {cell(per_mib, 'ms')} "
            f"| {cell([p['rss_peak_mib'] * MB for p in phases], 'mib')} |")
    return lines


#: The system calls named in the table; the others are summed in one row.
NAMED_CALLS = ("futex", "recvfrom", "sendto", "epoll_pwait", "epoll_ctl", "getsockname",
               "getsockopt", "getpid", "write", "read")


def syscalls(data, level):
    found = data["syscalls"]
    if found is None:
        return []  # measured by `make bench` from the commit that added it on
    calls = found["system_calls"]
    protocols = list(calls)
    lines = [_h(level, "System calls and CPU per small request"), ""]
    lines += [
        f"`{found['path']}` asked by h2load ({found['clients']} connections, one request in "
        f"flight on each). System calls of a txzserver (`server-threads {found['threads']}`) "
        f"counted by `strace -c -f` for {found['syscall_seconds']:g} s per protocol, divided by "
        "the requests answered:", "",
        "| per request | " + " | ".join(protocols) + " |",
        "|---|" + "---:|" * len(protocols),
    ]
    for name in NAMED_CALLS:
        lines.append(f"| `{name}` | " + " | ".join(
            f"{calls[p]['per_request'].get(name, 0):.2f}" for p in protocols) + " |")
    others = [calls[p]["total_per_request"] - sum(calls[p]["per_request"].get(n, 0) for n in NAMED_CALLS)
              for p in protocols]
    lines.append("| others | " + " | ".join(f"{o:.2f}" for o in others) + " |")
    lines.append("| total | " + " | ".join(f"{calls[p]['total_per_request']:.2f}" for p in protocols) + " |")
    lines += ["", f"CPU per request over HTTP/1.1, from `/proc`, both servers up at once and "
                  f"{len(next(iter(found['cpu'].values())))} alternating rounds of "
                  f"{found['rate_seconds']:g} s (the GIL holds each process at about one core, so "
                  "this cost sets requests/s; the main thread is txzserver's reactor):", "",
              "| Server | Requests/s | CPU per request | main thread | context switches | cores |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, runs in found["cpu"].items():
        lines.append(f"| {name} | {cell([r['requests_per_s'] for r in runs])} "
                     f"| {cell([r['cpu_ms_per_request'] for r in runs], 'ms')} "
                     f"| {cell([r['main_thread_ms_per_request'] for r in runs], 'ms')} "
                     f"| {cell([r['context_switches_per_request'] for r in runs], '2')} "
                     f"| {cell([r['cores'] for r in runs], '2')} |")
    return lines


def _of_one_thread(runs, configuration):
    """The median requests/s of ``configuration`` as a share of the median of "1 thread"."""
    one = spread([r["requests_per_s"] for r in runs["1 thread"]])
    this = spread([r["requests_per_s"] for r in runs[configuration]])
    return f"{100 * this[0] / one[0]:.0f}%" if one and this and one[0] else "-"


def threads(data, level):
    found = data["threads"]
    if found is None:
        return []  # measured by `make bench` from the commit that added it on
    servers, inprocess = found["servers"], found["in_process"]
    lines = [_h(level, "Publisher threads and the GIL (txzserver)"), ""]
    lines += [
        f"txzserver with one publisher thread, two, and two with `python-switch-interval 20ms`, "
        f"up at once on copies of the same site, {found['rounds']} alternating rounds of "
        f"{found['rate_seconds']:g} s h2load runs ({found['clients']} HTTP/1.1 connections, one "
        "request in flight on each); CPU is the server process's user and system time per "
        "request. Then Zope's app called in-process (no server, no HTTP) by one thread, by two "
        "threads at once, and by two at a 20 ms switch interval, in alternating rounds as long: "
        "what two busy Python threads cost with no server at all. The two groups ran one after "
        "the other, under whatever else the machine was doing then: compare rows within a group.",
        "",
        "| Publisher threads | `@@ok` req/s | Of one thread | CPU per `@@ok` | Page req/s "
        "| Of one thread | CPU per page |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, measured in (("txzserver", servers), ("Zope in-process", inprocess)):
        for configuration in measured["@@ok"]:
            small, page = measured["@@ok"][configuration], measured["page"][configuration]
            lines.append(
                f"| {kind}, {configuration} | {cell([r['requests_per_s'] for r in small])} "
                f"| {_of_one_thread(measured['@@ok'], configuration)} "
                f"| {cell([r['cpu_ms_per_request'] for r in small], 'ms')} "
                f"| {cell([r['requests_per_s'] for r in page], 'load')} "
                f"| {_of_one_thread(measured['page'], configuration)} "
                f"| {cell([r['cpu_ms_per_request'] for r in page], 'ms')} |")
    lines += ["", "What the longer interval costs: on the two-thread servers, the front page asked "
                  "on one connection (one publisher thread rendering pages) while `@@ok` is asked on "
                  "another, one request after the other on each, in the same rounds:", "",
              "| Beside pages | `@@ok` req/s | `@@ok` p50 | `@@ok` p99 | Pages/s |",
              "|---|---:|---:|---:|---:|"]
    for configuration, runs in found["beside_pages"].items():
        lines.append(f"| txzserver, {configuration} | {cell([r['requests_per_s'] for r in runs])} "
                     f"| {cell([r['p50_s'] for r in runs], 's')} | {cell([r['p99_s'] for r in runs], 's')} "
                     f"| {cell([r['pages_per_s'] for r in runs], 'load')} |")
    return lines


def tasks(data, level):
    lines = [_h(level, "Task queue"), ""]
    found = data["tasks"]
    if found is None:
        return lines + ["No tasks.json: run `python -m tests.bench.tasks`."]
    lines += [
        f"{found['tasks']} no-op tasks queued in one transaction, timed from the queuing response to "
        f"the last committed run; `server-threads {found['threads']}`, `concurrency "
        f"{found['concurrency']}` per instance; zmq is two instances on one ZEO server and a "
        f"broker. {found['rounds']} round{'s' if found['rounds'] != 1 else ''} on the same servers.", "",
        "| Backend | Instances | Tasks/s | Each ran once |",
        "|---|---:|---:|---|",
    ]
    for r in found["runs"]:
        once = "yes" if all(x["ran_once"] for x in r["rounds"]) else "NO"
        lines.append(f"| {r['backend']} | {r['instances']} | {cell([x['tasks_per_s'] for x in r['rounds']])} "
                     f"| {once} |")
    return lines


def _value(value):
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fanout(data, level):
    lines = [_h(level, "WebSocket connect rate and fan-out"), ""]
    found = data["fanout"]
    if found is None:
        return lines + ["No fanout.json: `python -m tests.bench.fanout` did not run or failed."]
    rows = found if isinstance(found, list) else found.get("rows")
    if isinstance(rows, list) and all(isinstance(r, dict) and "what" in r for r in rows):
        made = found.get("date") if isinstance(found, dict) else None
        prov = found.get("provenance") if isinstance(found, dict) else None
        commit = f"commit {_commit(prov)}" if prov else "fanout.json names no commit"
        lines += [f"By `python -m tests.bench.fanout`{f' on {made}' if made else ''} (its own rounds; "
                  f"{commit}).", "",
                  "| What | Value | Goal |", "|---|---:|---|"]
        for r in rows:
            value = f"{_value(r.get('value'))} {r.get('unit') or ''}".strip()
            goal = _value(r.get("goal") or "-")
            if "ok" in r:
                goal += " (met)" if r["ok"] else " (**missed**)"
            lines.append(f"| {r['what']} | {value} | {goal} |")
        return lines
    if isinstance(found, dict) and isinstance(found.get("runs"), list):
        lines += [f"One txzserver, N WebSocket clients on it; one event (a workflow transition), "
                  f"timed from the publish request. Run {found.get('date', '?')}, one round"
                  f"{'' if found.get('provenance') else '; fanout.json names no commit'}.", "",
                  "| Clients | Connect all | Connections/s | RSS per connection | Received | 99% received "
                  "| All received |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in found["runs"]:
            rate = (f"{r['clients'] / r['connect_seconds']:.0f}"
                    if r.get("clients") and r.get("connect_seconds") else "-")
            lines.append(f"| {r.get('clients')} | {_value(r.get('connect_seconds'))} s | {rate} "
                         f"| {_value(r.get('kib_per_connection'))} KiB | {r.get('received')} "
                         f"| {_value(r.get('p99_after_request_sent_seconds', '-'))} s "
                         f"| {_value(r.get('last_after_request_sent_seconds', '-'))} s |")
        return lines
    if isinstance(found, dict):
        lines += ["| What | Value |", "|---|---:|"]
        lines += [f"| {k} | {_value(v)} |" for k, v in found.items() if not isinstance(v, (dict, list))]
        return lines
    return lines + ["fanout.json has a shape this report does not know."]


def _section(render, data, *args):
    try:
        return render(data, *args)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        return [f"({render.__name__}: a results file of another shape ({exc!r}); run `make bench` again.)"]


def body(data, level, image):
    parts = [_section(intro, data), _section(starvation, data, level, image), _section(rates, data, level),
             _section(server_downloads, data, level), _section(idle, data, level),
             _section(downloads, data, level), _section(h3readers, data, level),
             _section(syscalls, data, level), _section(threads, data, level),
             _section(fanout, data, level),
             _section(tasks, data, level)]
    lines = []
    for part in parts:
        if part:
            lines += part + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def results_md(data):
    return "# txzserver benchmarks (`make bench`)\n\n" + body(data, 2, PLOT)


def page_section(data):
    return body(data, 3, f"../tests/bench/results/{PLOT}")  # relative to docs/


# -- docs/performance.md -----------------------------------------------------------------------

def page_parts(text):
    """(before, section, after) of the page's text around the bench markers."""
    return SECTION.parts(text)


def update_page(data, path=PAGE):
    SECTION.write(page_section(data), path)


# -- the plot -----------------------------------------------------------------------------------

def plot(data, path):
    """Write the starvation plot; return a note when it cannot be made."""
    try:
        import matplotlib
    except ImportError:
        return f"{path.name} not written: matplotlib is not installed (pip install -e '.[bench]')"
    matplotlib.use("Agg")
    from matplotlib import pyplot

    run = data["results"]
    if run is None:
        return f"{path.name} not written: no results.json"
    meta = run["meta"]
    figure, axes = pyplot.subplots(figsize=(7.5, 4.8))
    for index, server in enumerate(_servers(run)):
        color = f"C{index}"
        for key, style, what in (("p50_s", "-", "p50"), ("p99_s", "--", "p99")):
            xs, medians, lows, highs = [], [], [], []
            for readers in meta["readers"]:
                found = spread([p["front_page"][key] for r in server["runs"]
                                for p in r.get("starvation", []) if p["readers"] == readers])
                if found:
                    xs.append(readers)
                    medians.append(found[0])
                    lows.append(found[0] - found[1])
                    highs.append(found[2] - found[0])
            if xs:
                axes.errorbar(xs, medians, yerr=[lows, highs], color=color, linestyle=style,
                              marker="o" if key == "p50_s" else "s", capsize=3,
                              label=f"{server['label']}: {what}")
    axes.axhline(meta["timeout"], color="grey", linestyle=":",
                 label=f"client timeout ({meta['timeout']:g} s)")
    axes.set_yscale("log")
    axes.set_xticks(meta["readers"])
    axes.set_xlabel(f"slow readers ({meta['reader_rate_mib']:g} MiB/s each, "
                    f"{meta['file_size'] // MB} MiB File)")
    axes.set_ylabel("front page latency (s)")
    prov = meta["provenance"]
    rounds = f"{meta['rounds']} alternating round{'s' if meta['rounds'] != 1 else ''}"
    axes.set_title(f"Page latency while slow clients download\n{rounds}, "
                   f"median and min-max; {(prov.get('commit') or '?')[:12]}"
                   f"{' DIRTY' if prov.get('dirty') else ''}, {prov['machine']['cores']} cores"
                   f"{', TRIAL SETTINGS' if meta.get('non_defaults') else ''}",
                   fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})
    pyplot.close(figure)
    return None


def write_all(out=RESULTS, readme=False):
    """results.md, the plot and (with ``readme``) docs/performance.md's section; returns results.md's text."""
    data = load(out)
    note = plot(data, Path(out) / PLOT)
    if note:
        print(note, file=sys.stderr)
    text = results_md(data)
    (Path(out) / "results.md").write_text(text)
    if readme:
        update_page(data)
    return text


def main(argv=None):
    return SECTION.main(argv, __doc__, write_all, lambda out: page_section(load(out)))


if __name__ == "__main__":
    sys.exit(main())
