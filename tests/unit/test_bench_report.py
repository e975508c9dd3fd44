"""docs/performance.md's measured section is what the committed benchmark results render to, and the
rules that make those results trustworthy (tests/bench/report.py, provenance.py)."""

import json

import pytest

from tests.bench import provenance, report


def test_performance_page_matches_the_committed_results():
    current = report.page_parts(report.PAGE.read_text())[1]
    assert current == report.page_section(report.load(report.RESULTS)), (
        "docs/performance.md's measured section differs from tests/bench/results/*.json: "
        "python -m tests.bench.report --docs")


def test_the_page_names_the_plot_that_sits_next_to_the_tables():
    assert f"../tests/bench/results/{report.PLOT}" in report.page_section(report.load(report.RESULTS))


@pytest.mark.parametrize("values, kind, text", [
    ([0.104, 0.098, 0.130], "s", "104 ms (98-130)"),
    ([0.5, 10.04, 10.1], "s", "10.0 s (0.5-10.1)"),
    ([27.2], "n", "27"),
    ([3, 3, 3], "n", "3"),
    ([10.06, 10.08], "s", "10.1 s"),
    ([1, None, 3], "n", "2 (1-3)"),
    ([None], "n", "-"),
    ([], "s", "-"),
    ([1.5 * 2**20, 0.5 * 2**20], "mib", "1.0 MiB (0.5-1.5)"),
])
def test_a_cell_is_the_median_and_the_min_max_of_the_rounds(values, kind, text):
    assert report.cell(values, kind) == text


def test_paths_that_bench_writes_do_not_make_the_tree_dirty():
    porcelain = (" M tests/bench/results/results.json\n?? tests/bench/results/starvation.png\n"
                 " M docs/performance.md\n M src/txzserver/app.py\n?? tests/bench/new.py\n"
                 "R  old.py -> tests/bench/renamed.py\n")
    assert provenance.changed_paths(porcelain) == ["src/txzserver/app.py", "tests/bench/new.py",
                                                   "tests/bench/renamed.py"]


def test_a_dirty_tree_is_refused_unless_allowed(monkeypatch, capsys):
    monkeypatch.setattr(provenance, "git_state", lambda: {"commit": "c" * 40, "dirty": ["src/x.py"]})
    monkeypatch.delenv(provenance.ALLOW_DIRTY, raising=False)
    with pytest.raises(SystemExit) as exit_:
        provenance.require_clean()
    assert exit_.value.code == 2
    assert "src/x.py" in capsys.readouterr().err
    monkeypatch.setenv(provenance.ALLOW_DIRTY, "1")
    assert provenance.require_clean()["dirty"] == ["src/x.py"]
    assert "DIRTY TREE" in capsys.readouterr().err


def test_a_dirty_run_says_so_in_every_rendering():
    prov = {"commit": "a" * 40, "dirty": ["src/x.py"]}
    assert "NOT A CLEAN COMMIT" in report._commit(prov)
    assert "NOT A CLEAN COMMIT" not in report._commit(dict(prov, dirty=[]))


def test_fanout_results_are_rendered_in_either_shape_or_said_to_be_missing(tmp_path):
    data = {name: None for name in report.SOURCES}
    assert "No fanout.json" in "\n".join(report.fanout(data, 3))
    data["fanout"] = [{"what": "connect rate", "value": 290.5, "unit": "connections/s", "goal": ">= 100"},
                      {"what": "fan-out p99", "value": 0.3, "unit": "s", "goal": "< 0.25 s", "ok": False}]
    assert "| connect rate | 290.5 connections/s | >= 100 |" in report.fanout(data, 3)
    assert "| fan-out p99 | 0.3 s | < 0.25 s (**missed**) |" in report.fanout(data, 3)
    data["fanout"] = {"connect_per_s": 290.5, "clients": 1000}
    assert "| clients | 1000 |" in report.fanout(data, 3)
    (tmp_path / "fanout.json").write_text(json.dumps(data["fanout"]))
    assert report.load(tmp_path)["fanout"] == data["fanout"]
    assert report.load(tmp_path)["results"] is None
    assert "No results.json" in report.body(report.load(tmp_path), 3, "x.png")


def _run_with(servers):
    meta = {"provenance": {"date": "d", "commit": "c" * 40, "dirty": [],
                           "machine": {"cores": 2, "os": "x", "python": "3"}, "versions": {}},
            "rounds": 2, "order": list(servers), "threads": 2, "site": "Plone",
            "file_size": 256 * 2**20, "readers": [0], "reader_rate_mib": 2, "phase_seconds": 10,
            "timeout": 10, "rate_seconds": 5, "rate_clients": 4, "idle_connections": 10,
            "idle_seconds": 1, "downloads": 2}
    return {"meta": meta, "servers": servers}


def _rate(value):
    return {"requests_per_s": value, "p50_s": 0.005, "p99_s": 0.01, "failed": 0, "non_2xx": 0}


def test_rates_are_shares_of_the_in_process_limit_and_downloads_ratios_to_granian():
    servers = {
        "txzserver": {"label": "txz", "kind": "txzserver", "runs": [
            {"rates": {"@@ok HTTP/1.1": _rate(600), "@@ok h2c": _rate(580)},
             "downloads": {"HTTP/1.1": {"gb_per_s": [1.6, 1.8], "cpu_s_per_gib": [0.05, 0.07]}}},
            {"rates": {"@@ok HTTP/1.1": _rate(640)},
             "downloads": {"HTTP/1.1": {"gb_per_s": [1.7], "cpu_s_per_gib": [0.06]}}}]},
        "granian": {"label": "gra", "kind": "granian", "runs": [
            {"rates": {"@@ok HTTP/1.1": _rate(700)},
             "downloads": {"HTTP/1.1": {"gb_per_s": [1.0, 1.2], "cpu_s_per_gib": [0.5, 0.5]},
                           "h2c": {"error": "RuntimeError()"}}}]},
        "inprocess": {"label": "Zope in-process", "kind": "inprocess", "runs": [
            {"rates": {"@@ok in-process": _rate(780)}}, {"rates": {"@@ok in-process": _rate(820)}}]},
        "ceiling": {"label": "loopback limit", "kind": "ceiling", "runs": [
            {"downloads": {"sendfile": {"gb_per_s": [1.5, 1.7]}, "read+write": {"gb_per_s": [2.0]}}}]},
    }
    data = {name: None for name in report.SOURCES}
    data["results"] = _run_with(servers)
    rates = "\n".join(report.rates(data, 3))
    assert "| txz | @@ok | HTTP/1.1 | 620 (600-640) | 78% |" in rates  # 620 of 800
    assert "| gra | @@ok | HTTP/1.1 | 700 | 88% |" in rates
    assert "| Zope in-process | @@ok | in-process | 800 (780-820) | 100% |" in rates
    downloads = "\n".join(report.server_downloads(data, 3))
    assert "| txz | HTTP/1.1 | 1.70 GB/s (1.60-1.80) | 1.55x | 60 ms (50-70) |" in downloads
    assert "| gra | h2c | failed | | |" in downloads
    assert "| loopback limit | sendfile | 1.60 GB/s (1.50-1.70) | - | - |" in downloads
    assert "Zope in-process" not in downloads
    for table in (report.starvation(data, 3, "x.png"), report.idle(data, 3)):
        assert "Zope in-process" not in "\n".join(table) and "loopback" not in "\n".join(table)


STRACE_SUMMARY = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 62.10    0.412345          41     10011       120 futex
 20.02    0.132000          12     10500           sendto
 10.00    0.066000           6     10500      9500 recvfrom
  0.01    0.000100           5        20           getsockname
------ ----------- ----------- --------- --------- ----------------
100.00    0.610445          19     31031      9620 total
"""


def test_strace_summary_is_read_call_by_call_without_the_total():
    from tests.bench.syscalls import parse_strace_summary
    assert parse_strace_summary(STRACE_SUMMARY) == {
        "futex": 10011, "sendto": 10500, "recvfrom": 10500, "getsockname": 20}


def test_system_calls_and_cpu_per_request_are_rendered():
    per = {"futex": 9.5, "sendto": 1.0, "recvfrom": 1.0, "clone3": 0.25}
    found = {"path": "/Plone/@@ok", "clients": 4, "threads": 2, "syscall_seconds": 5,
             "rate_seconds": 5,
             "system_calls": {"HTTP/1.1": {"per_request": per, "total_per_request": 11.75},
                              "h2c": {"per_request": per, "total_per_request": 11.75}},
             "cpu": {"txzserver": [{"requests_per_s": 600, "cpu_ms_per_request": 1.6,
                                    "main_thread_ms_per_request": 0.25,
                                    "context_switches_per_request": 3.6, "cores": 1.0}],
                     "granian": [{"requests_per_s": 850, "cpu_ms_per_request": 1.2,
                                  "main_thread_ms_per_request": None,
                                  "context_switches_per_request": 3.1, "cores": 1.06}]}}
    lines = report.syscalls({"syscalls": found}, 3)
    assert "| `futex` | 9.50 | 9.50 |" in lines and "| others | 0.25 | 0.25 |" in lines
    assert "| total | 11.75 | 11.75 |" in lines
    assert "| txzserver | 600 | 1.60 ms | 0.25 ms | 3.60 | 1.00 |" in lines
    assert "| granian | 850 | 1.20 ms | - | 3.10 | 1.06 |" in lines
    assert report.syscalls({"syscalls": None}, 3) == []


def _rates(*values):
    return [{"requests_per_s": v, "cpu_ms_per_request": round(1000 / v, 3)} for v in values]


def test_thread_configurations_are_rendered_as_shares_of_one_thread():
    measured = {"@@ok": {"1 thread": _rates(500, 480, 520), "2 threads": _rates(400, 450, 410),
                         "2 threads, 20 ms": _rates(510, 490, 470)},
                "page": {"1 thread": _rates(40), "2 threads": _rates(36), "2 threads, 20 ms": _rates(38)}}
    beside = {"2 threads": [{"requests_per_s": 120, "p50_s": 0.007, "p99_s": 0.025, "pages_per_s": 30.2}],
              "2 threads, 20 ms": [{"requests_per_s": 100, "p50_s": 0.007, "p99_s": 0.040,
                                    "pages_per_s": 33.0}]}
    found = {"clients": 4, "rate_seconds": 5, "rounds": 3, "servers": measured,
             "beside_pages": beside, "in_process": measured}
    lines = report.threads({"threads": found}, 3)
    assert ("| txzserver, 2 threads | 410 (400-450) | 82% | 2.44 ms (2.22-2.50) | 36.0 | 90%"
            " | 27.78 ms |") in lines
    assert ("| Zope in-process, 1 thread | 500 (480-520) | 100% | 2.00 ms (1.92-2.08) | 40.0 | 100%"
            " | 25.00 ms |") in lines
    assert "| txzserver, 2 threads, 20 ms | 100 | 7 ms | 40 ms | 33.0 |" in lines
    assert report.threads({"threads": None}, 3) == []


def test_slow_http3_readers_are_grouped_over_the_rounds_with_the_reactor_cpu():
    def phase(readers, kind, p99, share, per_mib):
        return {"readers": readers, "kind": kind, "reader_mib": 100.0 if readers else 0.0,
                "reactor_cpu_share": share, "reactor_ms_per_mib": per_mib, "rss_peak_mib": 200.0,
                "front_page": {"requests": 100, "ok": 100, "timeouts": 0, "p50_s": 0.048, "p99_s": p99}}
    found = {"phase_seconds": 20, "file_size": 256 * 2**20, "reader_rate_mib": 2, "rounds": 2,
             "phases": [phase(0, "none", 0.060, 0.06, None), phase(8, "HTTP/3", 0.070, 0.20, 12.5),
                        phase(8, "HTTP/3", 0.080, 0.24, 14.5), phase(0, "none", 0.062, 0.07, None)]}
    lines = report.h3readers({"h3readers": found}, 3)
    assert "| none | 100 | 0 | 48 ms | 61 ms (60-62) | 0 | 0.0 | 6 (6-7)% | - | 200.0 MiB |" in lines
    assert ("| 8 HTTP/3 | 100 | 0 | 48 ms | 75 ms (70-80) | 0 | 100.0 | 22 (20-24)%"
            " | 13.50 ms (12.50-14.50) | 200.0 MiB |") in lines


def test_only_the_server_comparisons_own_settings_make_it_a_trial_run(monkeypatch):
    from tests.bench import run
    monkeypatch.setenv("BENCH_STEPS", "run h2download")  # which steps make bench runs
    monkeypatch.setenv("BENCH_H3_READERS", "4")  # another step's
    monkeypatch.setenv(provenance.ALLOW_DIRTY, "1")
    assert run.non_defaults([]) == []
    assert run.non_defaults(["--out", "/tmp/x"]) == []
    monkeypatch.setenv("BENCH_ROUNDS", "1")
    assert run.non_defaults(["--rate-seconds", "2"]) == ["BENCH_ROUNDS=1", "--rate-seconds", "2"]
