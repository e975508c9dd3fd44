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
