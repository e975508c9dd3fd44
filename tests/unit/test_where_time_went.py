"""tools/where_time_went.py: the busy share of each phase from tools/test-all.sh's CPU samples,
and each pytest worker's span from the module timeline."""

import importlib.util

from tests.support.instance import ROOT

spec = importlib.util.spec_from_file_location("where_time_went", ROOT / "tools" / "where_time_went.py")
where = importlib.util.module_from_spec(spec)
spec.loader.exec_module(where)


def test_each_phase_gets_the_busy_share_of_its_own_interval(tmp_path):
    (tmp_path / "phases.txt").write_text(
        "pytest               100 s   from     0 s to   100 s   exit 0\n"
        "smoke                 50 s   from   100 s to   150 s   exit 1\n")
    hz = where.JIFFIES_PER_SECOND
    # busy 3 jiffies of 4 up to 100 s, then 1 of 4; the containers: none, then half the CPUs'
    # time (200 s of CPU time in 50 s: 100 s of it), the pods a quarter of it before 100 s
    samples = [(0, 0, 0, 0, 0), (50, 150 * hz, 50 * hz, 0, 25 * 10**9),
               (100, 300 * hz, 100 * hz, 0, 100 * 10**9), (150, 350 * hz, 250 * hz, 100 * 10**9, 100 * 10**9)]
    (tmp_path / "cpu.txt").write_text("".join(" ".join(map(str, s)) + "\n" for s in samples) + "garbage\n")
    text = where.report(where.read_phases(tmp_path / "phases.txt"), where.read_samples(tmp_path / "cpu.txt"))
    assert "pytest              75%   containers   0%   pods  25%   (0 s - 100 s)" in text
    assert "smoke               25%   containers  50%   pods   0%   (100 s - 150 s)" in text
    assert "whole run           58%" in text


def test_samples_of_a_machine_without_the_cgroups_count_them_as_none(tmp_path):
    (tmp_path / "cpu.txt").write_text("0 0 0\n10 5 5\n")
    assert where.read_samples(tmp_path / "cpu.txt") == [(0, 0, 0, 0, 0), (10, 5, 5, 0, 0)]


def test_a_phase_with_fewer_than_two_samples_says_so():
    assert "n/a" in where.report([("lint", 3, 4)], [(0, 0, 0, 0, 0), (5, 10, 0, 0, 0)])


def test_workers_show_when_they_finished_and_their_last_modules(tmp_path):
    timeline = tmp_path / "timeline.tsv"
    timeline.write_text("gw0\ta.py\t1000.0\t1100.0\t150.0\ngw1\tb.py\t1000.0\t1010.0\t2.5\n"
                        "gw1\tc.py\t1010.0\t1030.0\t30.0\n")
    text = where.report([], [], where.read_timeline(timeline))
    assert "gw0: 1 modules, done at 100 s (last: a.py 100 s)" in text
    assert "gw1: 2 modules, done at 30 s (last: b.py 10 s, c.py 20 s)" in text
    # the modules by CPU, costliest first
    assert "pytest CPU: 182 s in modules" in text
    listed = text.split("costliest")[1]
    assert listed.index("a.py") < listed.index("c.py") < listed.index("b.py")
    assert "     150    100  a.py" in listed


def test_usage_without_arguments(capsys):
    assert where.main([]) == 2
    assert "where_time_went.py" in capsys.readouterr().err
