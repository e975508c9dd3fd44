"""`make bench`: one blob downloaded over HTTP/1.1, h2c, HTTP/2 over TLS and HTTP/3, in
alternation.

One txzserver (cleartext listener with h2c, TLS listener with ALPN h2 and http/1.1 and http3
on) on a copy of the Plone template serves its 256 MiB File. The same client, h2load (Debian's
nghttp2-client), fetches it over each TCP protocol in turn (h1, h2c, h1/TLS, h2/TLS, h3, h1,
...), ROUNDS times; a run's figure is the File's size over the client's wall time. Debian's
h2load has no QUIC: HTTP/3 is fetched by libcurl (curl_cffi: ngtcp2 and nghttp3, in C, the
fair client) and by aioquic's client (tests.bench.h3client), in Python on the same cores, so
that row is client and server together. HTTP/3 rows are compared with h2 over TLS, the
others with HTTP/1.1 on the same transport; libcurl fetches it over h2 too, so that its
HTTP/3 row is compared with the same client's HTTP/2. Peak server RSS is sampled during each protocol's runs.
Prints a Markdown table (median and spread, MiB/s) and writes results/h2download.json
(tests.bench.report renders it with the other results).

    python -m tests.bench.h2download [--rounds 3 (BENCH_ROUNDS)] [--template DIR] [--out DIR]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import provenance
from tests.bench import h3client
from tests.bench.clients import H2LOAD, MB, RssSampler, cpu_seconds, download
from tests.bench.servers import FILE_SIZE, THREADS, add_template_and_out, template_or_new
from tests.support.instance import (
    BIG_FILE_ID, SITE_ID, copy_instance_data, http_server, https_server,
    new_instance,
)
from tests.support.server import ServerProcess
from tests.support.tls import make_certificates

DOWNLOAD = f"/{SITE_ID}/{BIG_FILE_ID}/@@download/file"
# label -> (listener, extra h2load arguments, or the HTTP/3 client: "libcurl" or "aioquic")
PROTOCOLS = {
    "HTTP/1.1": ("http", ["--h1"]),
    "h2c": ("http", []),
    "HTTP/1.1 (TLS)": ("https", ["--h1"]),
    "h2 (TLS)": ("https", []),
    "h2 (TLS, libcurl client)": ("https", "libcurl-h2"),
    "h3 (QUIC, libcurl client)": ("https", "libcurl"),
    "h3 (QUIC, aioquic client)": ("https", "aioquic"),
}
#: Each HTTP/2 row is compared with HTTP/1.1 over the same transport, HTTP/3 with h2 over TLS
#: (the goal: at least half of it on loopback), by the same client where there is one.
BASELINE = {"HTTP/1.1": "HTTP/1.1", "h2c": "HTTP/1.1", "HTTP/1.1 (TLS)": "HTTP/1.1 (TLS)",
            "h2 (TLS)": "HTTP/1.1 (TLS)", "h2 (TLS, libcurl client)": "h2 (TLS)",
            "h3 (QUIC, libcurl client)": "h2 (TLS, libcurl client)",
            "h3 (QUIC, aioquic client)": "h2 (TLS)"}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fetch(url, extra, ca):
    """One download of ``url`` with h2load (HTTP/3: libcurl or aioquic, checking ``ca``);
    seconds."""
    if extra == "libcurl":
        return h3client.curl_download(url, ca)[0]
    if extra == "libcurl-h2":
        return h3client.curl_download(url, ca, http3=False)[0]
    if extra == "aioquic":
        return h3client.download(url, ca)[0]
    return download(url, extra)[0]


def start_server(workdir, template):
    directory = Path(workdir) / "txzserver"
    certs = make_certificates(Path(workdir))
    servers = (http_server(0, h2c=True) + "\n"
               + https_server(0, certs["cert"], certs["key"], http3=True))
    conf = new_instance(directory, servers, f"server-threads {THREADS}\n")
    copy_instance_data(template, directory)
    return ServerProcess(conf).start(), certs["ca"]


def measure(server, rounds, ca):
    urls = {label: server.url(DOWNLOAD, kind) for label, (kind, _) in PROTOCOLS.items()}
    for label, (_, extra) in PROTOCOLS.items():  # warm-up: blob opened, TLS and h2 paths run
        fetch(urls[label], extra, ca)
    runs = {label: [] for label in PROTOCOLS}
    cpu = {label: [] for label in PROTOCOLS}
    peaks = {label: 0 for label in PROTOCOLS}
    rss_idle = server.rss()
    for round_ in range(rounds):
        for label, (_, extra) in PROTOCOLS.items():
            sampler = RssSampler(server.pid, interval=0.02)
            sampler.start()
            before = cpu_seconds(server.pid)
            try:
                seconds = fetch(urls[label], extra, ca)
            finally:
                peaks[label] = max(peaks[label], sampler.stop())
            runs[label].append(round(FILE_SIZE / MB / seconds, 1))
            cpu[label].append(round((cpu_seconds(server.pid) - before) / (FILE_SIZE / 2**30), 3))
        log(f"round {round_ + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]} MiB/s" for k, v in runs.items()))
    return {"protocols": {label: {"mib_per_s": statistics.median(values), "runs": values,
                                  "cpu_s_per_gib": cpu[label],
                                  "rss_peak_mib": round(peaks[label] / MB, 1)}
                          for label, values in runs.items()},
            "baseline": BASELINE, "rss_idle_mib": round(rss_idle / MB, 1)}


def markdown(results):
    lines = [f"{FILE_SIZE // MB} MiB File, one client at a time, {results['rounds']} alternating"
             " rounds on 127.0.0.1 (median, min-max; server RSS idle"
             f" {results['rss_idle_mib']} MiB)", "",
             "| protocol | MiB/s (median) | min-max | compared with | peak server RSS |",
             "|---|---|---|---|---|"]
    for label in PROTOCOLS:
        r = results["protocols"][label]
        share = 100 * r["mib_per_s"] / results["protocols"][BASELINE[label]]["mib_per_s"]
        lines.append(f"| {label} | {r['mib_per_s']:.0f} | {min(r['runs']):.0f}-{max(r['runs']):.0f}"
                     f" | {share:.0f}% of {BASELINE[label]} | {r['rss_peak_mib']:.0f} MiB |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 3)))
    add_template_and_out(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    provenance.require_clean()
    record = provenance.record()
    if H2LOAD is None:
        print("h2load not found: apt-get install nghttp2-client", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="txzserver-h2bench-") as workdir:
        template = template_or_new(args.template, workdir, FILE_SIZE)
        server, ca = start_server(workdir, template)
        try:
            results = measure(server, args.rounds, ca)
        finally:
            server.stop(timeout=30)
    results.update(provenance=record, rounds=args.rounds, file_size=FILE_SIZE)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "h2download.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
