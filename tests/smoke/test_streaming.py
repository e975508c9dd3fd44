"""Streaming through the front: a 200 MB File up and down with matching sha256; while 8 slow
clients download it, the front page answers within 1 s and the instances' memory stays flat."""

import base64
import hashlib
import os
import re
import ssl
import subprocess
import threading
import time

import httpx
import pytest

from tests.support.slow import SlowReader

from .conftest import CA, DOCKER, container

SIZE = 200 * 1024 * 1024
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3,
         "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}


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


def memory(service):
    out = subprocess.run([DOCKER, "stats", "--no-stream", "--format", "{{.MemUsage}}", container(service)],
                         check=True, capture_output=True, text=True).stdout
    value, unit = re.match(r"\s*([\d.]+)\s*([A-Za-z]+)", out).groups()
    return float(value) * UNITS[unit]


RSS_SCRIPT = "awk '/^Name:/ {n = $2} /^VmRSS:/ && n == \"txzserver\" {print $2}' /proc/[0-9]*/status"


def rss(service):
    """Resident memory of the txzserver process in the container of ``service``."""
    out = subprocess.run([DOCKER, "exec", container(service), "sh", "-c",
                          RSS_SCRIPT],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[0]) * 1024


class MemorySampler(threading.Thread):
    """docker stats (cgroup memory, page cache of the blob included) and the server's RSS."""

    def __init__(self, services):
        super().__init__(daemon=True)
        self.samples = {service: [] for service in services}
        self.rss = {service: [] for service in services}
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            for service in self.samples:
                self.samples[service].append(memory(service))
                self.rss[service].append(rss(service))

    def stop(self):
        self._stop_event.set()
        self.join(30)


def test_front_page_fast_and_memory_flat_during_8_slow_downloads(port, base_url, ssl_context, big_file):
    context = ssl.create_default_context(cafile=str(CA))
    context.set_alpn_protocols(["http/1.1"])
    services = ("instance1", "instance2")
    before = {s: memory(s) for s in services}
    rss_before = {s: rss(s) for s in services}
    readers = [SlowReader(port, big_file["path"], ssl_context=context, host=f"localhost:{port}")
               for _ in range(8)]
    for reader in readers:
        reader.start()
    sampler = MemorySampler(services)
    try:
        for reader in readers:
            assert reader.started_body.wait(30)
            assert reader.error is None and reader.status == 200, (reader.status, reader.error)
        sampler.start()
        latencies = []
        deadline = time.monotonic() + 15
        with httpx.Client(base_url=base_url, verify=ssl_context, timeout=10) as probe:
            while time.monotonic() < deadline:
                start = time.monotonic()
                response = probe.get("/Plone", headers={"Connection": "close"})
                latencies.append(time.monotonic() - start)
                assert response.status_code == 200
                time.sleep(0.2)
        sampler.stop()
        assert all(r.error is None for r in readers), [r.error for r in readers]
        received = [r.received for r in readers]
        assert all(n > 5_000_000 for n in received), received
        growth = {s: round((max(sampler.samples[s]) - before[s]) / 2 ** 20, 1) for s in services}
        rss_growth = {s: round((max(sampler.rss[s]) - rss_before[s]) / 2 ** 20, 1) for s in services}
        print(f"\n8 slow readers received {sum(received) / 2 ** 20:.0f} MiB; front page: "
              f"{len(latencies)} requests, max {max(latencies):.3f} s; instance growth (MiB): "
              f"docker stats {growth}, server RSS {rss_growth}")
        assert max(latencies) < 1.0, latencies
        # the downloads are streamed from the blob file with backpressure, not held in memory:
        # the server's RSS stays flat; the cgroup figure also counts the blob's page cache
        assert all(g < 32 for g in rss_growth.values()), rss_growth
        assert all(g < 128 for g in growth.values()), growth
    finally:
        sampler.stop() if sampler.is_alive() else None
        for reader in readers:
            reader.stop()
        for reader in readers:
            reader.join(10)
