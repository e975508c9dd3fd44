"""results.json, results.md (tables for the README) and starvation.png from the raw numbers."""

import json

MB = 1024 * 1024


def _s(value):
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _mib(value):
    return "-" if value is None else f"{value / MB:.0f} MiB"


def markdown(results):
    meta = results["meta"]
    lines = [
        "## Benchmark: txzserver vs waitress (same Zope app, same Plone site)",
        "",
        f"Run {meta['date']} on {meta['cores']} cores, {meta['platform']}, Python {meta['python']}; "
        f"commit {meta['git']}. Every server runs alone, with {meta['threads']} publisher threads, "
        "on 127.0.0.1 with the clients on the same machine.",
        "Other engineers were running tests on this machine at the same time, so the numbers carry "
        f"that noise (1-min load average at the start of each server's run: {meta['loadavg_note']}).",
        "",
        f"### Front page while slow clients download a 100 MiB File ({meta['reader_rate_mib']:g} MiB/s each)",
        "",
        f"`/{meta['site']}` requested one after the other for {meta['phase_seconds']:g} s on new "
        f"connections, {meta['timeout']:g} s timeout (a timed-out request counts as its elapsed "
        "time, so p95/max are lower bounds then). \"Served\" is how many slow downloads the server "
        "had started answering.",
        "",
        "| Server | Slow readers | Served | Requests | p50 | p95 | max | Timeouts |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in results["servers"].items():
        if "error" in run and not run.get("starvation"):
            lines.append(f"| {run['label']} | failed: {run['error']} | | | | | | |")
            continue
        for phase in run.get("starvation", []):
            probe = phase["front_page"]
            lines.append(
                f"| {run['label']} | {phase['readers']} | {phase['readers_served']} | {probe['requests']} "
                f"| {_s(probe['p50_s'])} | {_s(probe['p95_s'])} | {_s(probe['max_s'])} "
                f"| {probe['timeouts']} |")
    most = max((run.get("memory", {}).get("readers", 0) for run in results["servers"].values()), default=0)
    lines += [
        "",
        "### Memory, throughput, front-page rate",
        "",
        f"| Server | RSS idle | RSS before {most} readers | RSS peak with {most} readers "
        "| 100 MiB download, HTTP/1.1 "
        "| 100 MiB download, h2c | Front page req/s | Front page p50 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in results["servers"].items():
        memory = run.get("memory", {})
        downloads = run.get("download", {})
        rate = run.get("front_page_rate", {})

        def speed(key):
            d = downloads.get(key)
            if not d:
                return "n/a"
            if "error" in d:
                return "failed"
            return f"{d['mib_per_s']:g} MiB/s" + ("" if d["complete"] else " (incomplete)")

        lines.append(
            f"| {run['label']} | {_mib(memory.get('rss_idle'))} | {_mib(memory.get('rss_before'))} "
            f"| {_mib(memory.get('rss_peak'))} "
            f"| {speed('http/1.1')} | {speed('h2c')} "
            f"| {rate.get('requests_per_s', '-')} | {_s(rate.get('p50_s'))} |")
    rate_tool = meta.get("rate_tool", "")
    lines += [
        "",
        f"Front-page rate: {rate_tool}, {meta['rate_seconds']:g} s, {meta['rate_connections']} "
        "keep-alive connections. Downloads: httpx, one client, HTTP/1.1 (and h2c with prior "
        "knowledge where the server has it), median of 3; the client's own CPU is part of the figure. "
        "RSS idle is after warm-up; \"before\" is after the earlier phases, so it includes what "
        "they left allocated.",
        "",
        "On a shared machine the starvation rows are the robust result (milliseconds against "
        "timeouts); download speeds and request rates last seconds and move by tens of percent "
        "from run to run, so small differences between servers there mean nothing.",
    ]
    for note in meta.get("notes", []):
        lines.append(f"\n{note}")
    return "\n".join(lines) + "\n"


def write_json(results, path):
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def plot(results, path):
    """Write the starvation plot; return a note when it cannot be made."""
    try:
        import matplotlib
    except ImportError:
        return "starvation.png not written: matplotlib is not installed in this venv"
    matplotlib.use("Agg")
    from matplotlib import pyplot

    meta = results["meta"]
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    for run in results["servers"].values():
        phases = run.get("starvation", [])
        if phases:
            axes.plot([p["readers"] for p in phases], [p["front_page"]["p95_s"] for p in phases],
                      marker="o", label=run["label"])
    axes.axhline(meta["timeout"], color="grey", linestyle=":",
                 label=f"client timeout ({meta['timeout']:g} s)")
    axes.set_yscale("log")
    axes.set_xlabel(f"slow readers ({meta['reader_rate_mib']:g} MiB/s each, 100 MiB File)")
    axes.set_ylabel("front page p95 latency (s)")
    axes.set_title("Front page latency while slow clients download")
    axes.legend()
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return None
