"""Streaming through the front: a 200 MB File up and down with matching sha256; while 8 slow
clients download it, the front page stays as fast as just before (tests/support/latency.PageProbe,
from a process of its own) and the instances' memory stays flat."""

import base64
import hashlib
import os
import ssl
import subprocess
import time

import httpx
import pytest

from tests.support.latency import PageProbe
from tests.support.results import record
from tests.support.slow import SlowReader

from .conftest import CA, DOCKER, container

SIZE = 200 * 1024 * 1024
MEASURE_SECONDS = 15  # pages and memory while the 8 downloads run
#: MiB the server process (RSS) and the container (anonymous memory: page cache of the blob
#: excluded) may grow while 8 clients download the 200 MB file. The downloads are streamed from
#: the blob file with backpressure; one download held in memory would add 200 MiB at once.
RSS_GROWTH_MIB = 32
ANON_GROWTH_MIB = 128


@pytest.fixture(scope="module")
def big_file(base_url, ssl_context, admin):
    data = os.urandom(SIZE)
    body = {"@type": "File", "id": "big.bin", "title": "Big",
            "file": {"data": base64.b64encode(data).decode("ascii"), "encoding": "base64",
                     "filename": "big.bin", "content-type": "application/octet-stream"}}
    with httpx.Client(base_url=base_url, verify=ssl_context, timeout=600) as client:
        client.delete("/Plone/big.bin", auth=admin)
        response = client.post("/Plone", json=body, auth=admin, headers={"Accept": "application/json"})
    assert response.status_code == 201, response.text[:300]
    return {"path": "/Plone/big.bin/@@download/file", "sha256": hashlib.sha256(data).hexdigest()}


def test_200mb_download_matches_upload(client, big_file):
    digest, size = hashlib.sha256(), 0
    with client.stream("GET", big_file["path"]) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    assert size == SIZE
    assert digest.hexdigest() == big_file["sha256"]


# one line per sample: the txzserver process's VmRSS (kB), the container's anonymous memory
# (bytes: "rss" in cgroup v1's memory.stat, "anon" in v2's); a sleep between samples
SAMPLE_SCRIPT = """
i=0
while [ "$i" -lt "$1" ]; do
  r=$(for f in /proc/[0-9]*/status; do cat "$f" 2>/dev/null; done |
      awk '/^Name:/ {n = $2} /^VmRSS:/ && n == "txzserver" {print $2}')
  a=$(cat /sys/fs/cgroup/memory.stat /sys/fs/cgroup/memory/memory.stat 2>/dev/null |
      awk '$1 == "anon" || $1 == "rss" {print $2; exit}')
  echo "$r $a"
  i=$((i + 1))
  if [ "$i" -lt "$1" ]; then sleep "$2"; fi
done
"""


class MemorySampler:
    """Memory of an instance sampled ``count`` times, ``interval`` seconds apart, by one shell
    loop in its container (one `docker exec`, not one per sample: the sampler must not load
    the machine while its pages are measured). ``samples()``: [(rss bytes, anon bytes)].
    The status files are read one by one, errors ignored: a process that exits between the
    glob and the read (the image's health check, a `docker exec`) made awk stop, and a sample
    came out without its RSS."""

    def __init__(self, service, count, interval=0.5):
        self.process = subprocess.Popen(
            [DOCKER, "exec", container(service), "sh", "-c", SAMPLE_SCRIPT, "sample", str(count),
             str(interval)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.timeout = count * interval + 60

    def samples(self):
        out, err = self.process.communicate(timeout=self.timeout)
        assert self.process.returncode == 0, f"memory sampler exited {self.process.returncode}: {err}"
        rows = [line.split() for line in out.splitlines() if line.strip()]
        assert rows and all(len(row) == 2 for row in rows), f"memory sampler printed {out!r} {err}"
        return [(int(rss) * 1024, int(anon)) for rss, anon in rows]


def memory_now(service):
    return MemorySampler(service, 1).samples()[0]


def test_front_page_and_memory_during_8_slow_downloads(port, base_url, big_file):
    context = ssl.create_default_context(cafile=str(CA))
    context.set_alpn_protocols(["http/1.1"])
    services = ("instance1", "instance2")
    readers = [SlowReader(port, big_file["path"], ssl_context=context, host=f"localhost:{port}")
               for _ in range(8)]
    with PageProbe(f"{base_url}/Plone", verify=CA) as probe:
        probe.baseline(20, timeout=300)  # 21 pages: a minute or more on a busy machine
        before = {s: memory_now(s) for s in services}
        for reader in readers:
            reader.start()
        try:
            for reader in readers:
                assert reader.started_body.wait(60), f"no body within 60 s: {reader.error!r}"
                assert reader.error is None and reader.status == 200, (reader.status, reader.error)
            start = probe.mark()
            samplers = {s: MemorySampler(s, count=2 * MEASURE_SECONDS) for s in services}
            time.sleep(MEASURE_SECONDS)
            verdict = probe.verdict("during 8 slow downloads", start, probe.mark())
            samples = {s: samplers[s].samples() for s in services}
            errors = [r.error for r in readers if r.error is not None]
            received = [r.received for r in readers]
        finally:
            for reader in readers:
                reader.stop()
            for reader in readers:
                reader.join(10)
    rss_growth = {s: round((max(r for r, _ in samples[s]) - before[s][0]) / 2 ** 20, 1) for s in services}
    anon_growth = {s: round((max(a for _, a in samples[s]) - before[s][1]) / 2 ** 20, 1) for s in services}
    figures = record("smoke_streaming", "slow_downloads", received_mib=round(sum(received) / 2 ** 20),
                     rss_growth_mib=rss_growth, anon_growth_mib=anon_growth,
                     memory_samples={s: len(samples[s]) for s in services}, **verdict.figures())
    print(f"\n8 slow readers through the front: {figures}")
    assert not errors, errors
    assert all(n > 5_000_000 for n in received), received
    verdict.check()
    assert all(g < RSS_GROWTH_MIB for g in rss_growth.values()), rss_growth
    assert all(g < ANON_GROWTH_MIB for g in anon_growth.values()), anon_growth
