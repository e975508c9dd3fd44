"""Slow clients downloading large blobs do not hold publisher threads or memory.

The main server runs with server-threads 1: if a download held that thread, the front
page could not be published until the download ended. Waitress with one thread is run
through the same steps for contrast (there the front page does wait).
"""

import time

import pytest

from tests.support.server import wait_for
from tests.support.slow import SlowReader, timed_get

MB = 1024 * 1024


def _start_readers(server, path, count, rate=1_000_000):
    readers = [SlowReader(server.port, path, rate=rate) for _ in range(count)]
    for reader in readers:
        reader.start()
    for reader in readers:
        assert reader.started_body.wait(30), "no response head within 30 s"
        assert reader.error is None, reader.error
        assert reader.status == 200
    wait_for(lambda: all(r.received > MB for r in readers), 30, what="readers to get 1 MB each")
    return readers


def _stop(readers):
    for reader in readers:
        reader.stop()
    for reader in readers:
        reader.join(10)


def test_front_page_answers_while_slow_download_runs(plone_server, big_file, site_id):
    assert timed_get(plone_server.url(f"/{site_id}"))[1] == 200  # warm caches first
    readers = _start_readers(plone_server, big_file["path"] + "/@@download/file", 1)
    try:
        for _ in range(3):
            seconds, status = timed_get(plone_server.url(f"/{site_id}"), timeout=10)
            assert status == 200
            assert seconds < 1.0, f"front page took {seconds:.2f} s during a slow download"
        assert readers[0].received < big_file["size"], "the download should still be running"
    finally:
        _stop(readers)


def test_memory_flat_with_ten_slow_downloads(plone_server, big_file, site_id):
    path = big_file["path"] + "/@@download/file"
    # Warm up: caches, one complete range response, the front page.
    timed_get(plone_server.url(f"/{site_id}"))
    timed_get(plone_server.url(path), headers={"Range": "bytes=0-1048575"})
    baseline = plone_server.rss()
    readers = _start_readers(plone_server, path, 10)
    peak = baseline
    front = []
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            peak = max(peak, plone_server.rss())
            front.append(timed_get(plone_server.url(f"/{site_id}"), timeout=10))
            time.sleep(0.25)
        peak = max(peak, plone_server.rss())
        received = sum(r.received for r in readers)
    finally:
        _stop(readers)
    growth = (peak - baseline) / MB
    print(f"RSS baseline {baseline / MB:.1f} MB, peak {peak / MB:.1f} MB, growth {growth:.1f} MB;"
          f" readers received {received / MB:.1f} MB; front page max {max(s for s, _ in front):.3f} s")
    assert growth < 50, f"server RSS grew by {growth:.1f} MB with 10 slow downloads"
    assert received > 10 * 5 * MB, "the slow readers should have kept reading"
    assert all(status == 200 and seconds < 1.0 for seconds, status in front), front


@pytest.mark.contrast
def test_waitress_one_thread_is_starved_by_a_slow_download(servers, big_file, site_id):
    """Expected contrast: stock waitress, 1 thread, the same site and the same slow reader."""
    waitress = servers.start_waitress("waitress1", threads=1)
    readers = _start_readers(waitress, big_file["path"] + "/@@download/file", 1)
    try:
        seconds, status = timed_get(waitress.url(f"/{site_id}"), timeout=3)
    finally:
        _stop(readers)
        waitress.stop()
    print(f"waitress front page during a slow download: status {status} after {seconds:.2f} s")
    assert status is None or seconds > 1.0, "waitress was expected to be starved here"
