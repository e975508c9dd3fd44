"""The plone image's `upgrade` command (images/plone/scripts/upgrade.py, run by `txzserver run` as
the entrypoint runs it) on a real Plone site in RelStorage on PostgreSQL.

The site gets a test add-on (tests/support/upgradestep) installed at profile version 1000; then
the instances' etc/site.zcml loads its next version (1001, with the upgrade step 1000 -> 1001 that
counts its runs in the site), as a new image would. Checked: `upgrade --dry-run` and
UPGRADE_DRY_RUN=1 list the step and change nothing; a missing site is a clear error (exit 1);
two `upgrade` runs started at once, the first held inside the step (a gate file), run the step
exactly once: the second waits for PostgreSQL's advisory lock, then finds nothing pending and
exits 0 saying so; an instance's start gate (`--wait`, UPGRADE_WAIT) waits while the step is
pending and goes on once it committed.

With ZEO the lock is a marker in the ZODB: tests/unit/test_upgradelock.py runs it on a real
in-memory ZODB (waits, conflicts, stale markers), and `make k8s-smoke` (test_podman_upgrade.py)
runs two upgrade Jobs at once on the ZEO stack; this module needs only the PostgreSQL lock.
"""

import json
import os
import subprocess

import pytest

from tests.support.instance import ROOT, SITE_ID, TXZSERVER, new_instance
from tests.support.postgresql import STORAGE_CONF, relstorage_environment
from tests.support.server import wait_for
from tests.support.upgradestep import GATE, PROFILE, site_zcml

pytestmark = pytest.mark.timeout(900)

UPGRADE = ROOT / "images" / "plone" / "scripts" / "upgrade.py"
SITE_SCRIPT = ROOT / "tests" / "support" / "upgrade_site_script.py"
STEP = f"{PROFILE} 1000 -> 1001: Count the upgrade runs"
# Zope's start on a busy 2-core machine, a few times over
PROCESS_TIMEOUT = 300


class Database:
    """The RelStorage database holding a copy of the session's Plone site, and instance folders
    on it, one per process (each with its own blob cache and event log)."""

    def __init__(self, directory):
        self.directory, self.count, self.dsn = directory, 0, None

    def instance(self, name, version="v2", **env):
        """A zope.conf on this storage loading the add-on's ``version``; the process's env."""
        self.count += 1
        directory = self.directory / f"{name}-{self.count}"
        conf = new_instance(directory, storage=f"%include {STORAGE_CONF}")
        environment = relstorage_environment(self.dsn, directory / "var")
        (conf.parent / "site.zcml").write_text(site_zcml(version))
        path = os.pathsep.join(p for p in (str(ROOT), environment.get("PYTHONPATH")) if p)
        environment.update({"PYTHONPATH": path, "SITE": SITE_ID, **env})
        return conf, environment

    def start(self, name, *args, version="v2", **env):
        """`txzserver run` of upgrade.py with ``args``: the process, its output in a file."""
        conf, environment = self.instance(name, version, **env)
        output = open(conf.parent.parent / "output.txt", "w+")
        process = subprocess.Popen([TXZSERVER, "run", str(conf), str(UPGRADE), *args],
                                   cwd=conf.parent.parent, env=environment, stdout=output,
                                   stderr=subprocess.STDOUT, text=True)
        process.output_path = output.name
        output.close()
        return process

    def site(self, mode, version="v2"):
        """upgrade_site_script.py: install the add-on, or read the counter, version, marker."""
        conf, environment = self.instance(mode, version)
        result = conf.parent.parent / "result.json"
        run = subprocess.run([TXZSERVER, "run", str(conf), str(SITE_SCRIPT), SITE_ID, mode,
                              str(result)], cwd=conf.parent.parent, env=environment,
                             capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
        assert run.returncode == 0, run.stdout + run.stderr
        return json.loads(result.read_text())


def output_of(process):
    with open(process.output_path) as out:
        return out.read()


def finished(process):
    """Wait for ``process``; its exit status and output."""
    process.wait(PROCESS_TIMEOUT)
    return process.returncode, output_of(process)


@pytest.fixture(scope="module")
def database(tmp_path_factory, shared_postgresql, relstorage_template):
    """A copy of the session's RelStorage site with the add-on installed at 1000."""
    database = Database(tmp_path_factory.mktemp("upgrade"))
    database.dsn = shared_postgresql.create_database(
        "upgrade_test", template=relstorage_template["template_database"])
    assert database.site("install", version="v1") == {"runs": 0, "version": "1000", "marker": None}
    return database


def test_dry_run_lists_the_pending_step_and_changes_nothing(database):
    runs = [database.start("dry-run", "--dry-run"),
            database.start("dry-run-env", UPGRADE_DRY_RUN="1")]
    for run in runs:
        status, output = finished(run)
        assert status == 0, output
        assert (f"site /{SITE_ID}: 1 upgrade step(s) pending:\n  {STEP}\n"
                "dry run: nothing run, nothing changed\n") in output
        assert "running " not in output and "waiting" not in output
    assert database.site("read") == {"runs": 0, "version": "1000", "marker": None}


def test_a_site_that_does_not_exist_is_an_error(database):
    runs = [database.start("missing", *args, SITE="Nowhere") for args in ((), ("--dry-run",))]
    for run in runs:
        status, output = finished(run)
        assert status == 1, output
        assert ("error: there is no Plone site /Nowhere (SITE) in this database: create-site "
                "makes it") in output


def test_two_runs_at_once_apply_the_step_once_and_the_start_gate_waits(database, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    waiter = database.start("start-gate", "--wait", str(PROCESS_TIMEOUT))
    runs = [database.start(f"upgrade-{n}", **{GATE: str(gate)}) for n in (1, 2)]
    try:
        started = wait_for(lambda: list(gate.glob("started-*")), PROCESS_TIMEOUT,
                           what="a run inside the step")
        first = next(run for run in runs if started[0].name == f"started-{run.pid}")
        second = runs[1 - runs.index(first)]
        wait_for(lambda: "waiting for the upgrade lock" in output_of(second), PROCESS_TIMEOUT,
                 what="the second run waiting for the lock")
        wait_for(lambda: f"waiting for the upgrade of /{SITE_ID}" in output_of(waiter),
                 PROCESS_TIMEOUT, what="the start gate waiting")
        assert first.poll() is None and second.poll() is None and waiter.poll() is None
        (gate / "open").touch()
        status, output = finished(first)
        assert status == 0, output
        assert f"  {STEP}\nrunning {STEP}\n" in output
        assert f"site /{SITE_ID}: 1 upgrade step(s) run and committed in " in output
        status, output = finished(second)
        assert status == 0, output
        assert "waiting for the upgrade lock (PostgreSQL advisory lock" in output
        assert (f"site /{SITE_ID}: nothing pending (another run upgraded it while this one "
                "waited)") in output
        assert "running " not in output
        status, output = finished(waiter)
        assert status == 0, output
        assert (output.index(f"waiting for the upgrade of /{SITE_ID}")
                < output.index("no upgrade step pending: starting")), output
    finally:
        (gate / "open").touch()
        for process in (waiter, *runs):
            if process.poll() is None:
                process.kill()
                process.wait(30)
    assert len(list(gate.glob("started-*"))) == 1  # the step ran once, not run and thrown away
    read = database.site("read")
    assert read["runs"] == 1 and read["version"] == "1001"
    assert read["marker"] is None  # RelStorage: the advisory lock, nothing in the ZODB
    status, output = finished(database.start("again"))
    assert status == 0 and f"site /{SITE_ID}: nothing pending\n" in output, output
