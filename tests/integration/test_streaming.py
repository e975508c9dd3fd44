"""Slow clients downloading large blobs do not hold publisher threads or memory.

The main server runs with server-threads 1: if a download held that thread, the front
page could not be published until the download ended. Waitress with one thread is run
through the same steps for contrast (there the front page does wait).

The bounds asserted here are the figures of README.md's streaming table (section "Why"),
read from the README as test_webdav.py reads its litmus table. What was measured goes to
tests/results/streaming.json; the last tests check that file, written by this session,
against the README.
"""

import datetime
import json
import os
import re
import time
from importlib.metadata import version

import pytest

from tests.support.instance import ROOT
from tests.support.readme import table_row, table_rows
from tests.support.server import wait_for
from tests.support.slow import SlowReader, timed_get

MB = 1024 * 1024
RATE = 1_000_000  # bytes/s per slow reader, "1 MB/s" in the README
RESULTS = ROOT / "tests" / "results" / "streaming.json"

# README.md, "Why": | same Plone site, 100 MB blob, `threads 1` | txzserver | waitress 3.0.2 |
WHY = "## Why"
ONE_READER = "front page while 1 client reads the blob at 1 MB/s"
TEN_READERS = "front page while 10 clients read it at 1 MB/s"
RSS = "server RSS growth with 10 slow downloads"


def _figure(pattern, cell):
    match = re.fullmatch(pattern, cell)
    assert match, f"README.md streaming table: {cell!r} does not read as {pattern!r}"
    return float(match.group(1))


def readme_figures():
    """The streaming table's figures: upper bounds for txzserver, the waitress timeout."""
    header = table_rows(WHY)[0]
    one, ten, rss = (table_row(WHY, row) for row in (ONE_READER, TEN_READERS, RSS))
    return {
        "waitress_version": header[2].removeprefix("waitress "),
        "txzserver": {
            "front_page_1_reader_max_s": _figure(r"200 in < ([\d.]+) s", one[0]),
            "front_page_10_readers_max_s": _figure(r"200 in < ([\d.]+) s", ten[0]),
            "rss_growth_10_readers_mb": _figure(r"< ([\d.]+) MB", rss[0]),
        },
        "waitress": {
            "front_page_1_reader_no_answer_s": _figure(
                r"no answer within ([\d.]+) s \(worker busy\)", one[1]),
        },
    }


FIGURES = readme_figures()
LIMITS = FIGURES["txzserver"]


@pytest.fixture(scope="module")
def results():
    """What the tests here measured; ``save(results)`` writes it to RESULTS."""
    return {"run": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "setup": {"blob_mb": 100, "server-threads": 1, "reader_rate_bytes_per_s": RATE,
                      "waitress": version("waitress")},
            "txzserver": {}, "waitress": {}}


def save(results):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def _load_average():
    return round(os.getloadavg()[0], 2)


def _start_readers(server, path, count, rate=RATE):
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


def test_front_page_answers_while_slow_download_runs(plone_server, big_file, site_id, results):
    limit = LIMITS["front_page_1_reader_max_s"]
    assert timed_get(plone_server.url(f"/{site_id}"))[1] == 200  # warm caches first
    readers = _start_readers(plone_server, big_file["path"] + "/@@download/file", 1)
    front = []
    try:
        for _ in range(10):
            front.append(timed_get(plone_server.url(f"/{site_id}"), timeout=10))
            time.sleep(0.1)
        still_running = readers[0].received < big_file["size"]
    finally:
        _stop(readers)
    seconds = [round(s, 3) for s, _ in front]
    results["txzserver"].update(front_page_1_reader_max_s=max(seconds),
                                front_page_1_reader_samples=seconds,
                                load_average_1_reader=_load_average())
    save(results)
    assert all(status == 200 for _, status in front), front
    assert max(seconds) < limit, f"front page took {seconds} s during a slow download (README: < {limit} s)"
    assert still_running, "the download should still be running"


def test_memory_flat_with_ten_slow_downloads(plone_server, big_file, site_id, results):
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
    slowest = max(seconds for seconds, _ in front)
    results["txzserver"].update(
        front_page_10_readers_max_s=round(slowest, 3), front_page_10_readers_requests=len(front),
        rss_baseline_mb=round(baseline / MB, 1), rss_peak_mb=round(peak / MB, 1),
        rss_growth_10_readers_mb=round(growth, 1), received_10_readers_mb=round(received / MB, 1),
        load_average_10_readers=_load_average())
    save(results)
    print(f"RSS baseline {baseline / MB:.1f} MB, peak {peak / MB:.1f} MB, growth {growth:.1f} MB;"
          f" readers received {received / MB:.1f} MB; front page max {slowest:.3f} s")
    limit = LIMITS["rss_growth_10_readers_mb"]
    assert growth < limit, f"server RSS grew by {growth:.1f} MB with 10 slow downloads (README: < {limit} MB)"
    assert received > 10 * 5 * MB, "the slow readers should have kept reading"
    assert all(status == 200 for _, status in front), front
    limit = LIMITS["front_page_10_readers_max_s"]
    assert slowest < limit, (f"front page took up to {slowest:.3f} s with 10 slow readers"
                             f" (README: < {limit} s)")


@pytest.mark.contrast
def test_waitress_one_thread_is_starved_by_a_slow_download(servers, big_file, site_id, results):
    """Expected contrast: stock waitress, 1 thread, the same site and the same slow reader."""
    wait = FIGURES["waitress"]["front_page_1_reader_no_answer_s"]
    waitress = servers.start_waitress("waitress1", threads=1)
    readers = _start_readers(waitress, big_file["path"] + "/@@download/file", 1)
    try:
        seconds, status = timed_get(waitress.url(f"/{site_id}"), timeout=wait)
    finally:
        _stop(readers)
        waitress.stop()
    results["waitress"].update(front_page_1_reader_status=status,
                               front_page_1_reader_waited_s=round(seconds, 3))
    save(results)
    print(f"waitress front page during a slow download: status {status} after {seconds:.2f} s")
    assert status is None, (f"waitress answered {status} after {seconds:.2f} s"
                            f" (README: no answer within {wait} s)")


# The README against the results file this session wrote (run after the measurements above).

def _saved(results, column):
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    assert saved.get("run") == results["run"], f"{RESULTS} was not written by this test session"
    return saved[column]


def test_readme_states_what_txzserver_measured(results):
    measured = _saved(results, "txzserver")
    for figure, bound in LIMITS.items():
        assert figure in measured, f"{figure} was not measured in this session"
        assert measured[figure] < bound, f"README.md says {figure} < {bound}; measured {measured[figure]}"


@pytest.mark.contrast
def test_readme_states_what_waitress_measured(results):
    measured = _saved(results, "waitress")
    assert FIGURES["waitress_version"] == version("waitress")
    assert "front_page_1_reader_status" in measured, "waitress was not measured in this session"
    assert measured["front_page_1_reader_status"] is None
    assert measured["front_page_1_reader_waited_s"] >= FIGURES["waitress"]["front_page_1_reader_no_answer_s"]
