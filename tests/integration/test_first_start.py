"""Processes starting together on one new ZEO database all start (txzserver.zope.firststart).

Zope makes the database root, the application object and its standard contents at its first
start. Two `txzserver serve` instances and one `txzserver run` (the site Job's way in) are
started at once on an empty ZEO server, as a new Kubernetes deployment starts them. Before the
retry, 2 of 3 such processes exited with a ConflictError on oid 0 or 1 in each of 3 tries here;
now each collision is logged and retried, and every process starts. Whether two processes
commit at the same moment is the machine's timing: a round in which none collided proves
nothing, so up to ROUNDS rounds (each on a new database) run until one had a retry.
Checked: both instances answer GET / with 200, the script sees the root's standard contents
once each, and Zope's list of addable types has no entry twice (a
retry re-runs the products' registrations on a list restored first).
"""

import concurrent.futures
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.instance import TXZSERVER, new_instance
from tests.support.results import record
from tests.support.server import ServerProcess, free_port, port_is_free, wait_for

pytestmark = pytest.mark.timeout(900)

ROUNDS = 3
#: the Zope root's contents after a first start (OFS.Application.initialize and its products)
STANDARD_CONTENTS = ["acl_users", "browser_id_manager", "session_data_manager", "error_log",
                     "virtual_hosting", "index_html"]
RETRIED = "first start: ConflictError on"
SCRIPT = """\
import json, Products
print("contents", list(app.objectIds()))
print("meta_types", json.dumps([entry["name"] for entry in Products.meta_types]))
"""


def start_empty_zeo(directory):
    """A ZEO server on a new, empty FileStorage; returns (process, address)."""
    directory.mkdir(parents=True)
    port = free_port()
    conf = directory / "zeo.conf"
    conf.write_text(f"<zeo>\n  address 127.0.0.1:{port}\n</zeo>\n<blobstorage 1>\n"
                    f"  blob-dir {directory}/blobs\n  <filestorage>\n"
                    f"    path {directory}/Data.fs\n  </filestorage>\n</blobstorage>\n")
    log = open(directory / "zeo.log", "wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "runzeo"), "-C", str(conf)],
                               stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_for(lambda: not port_is_free(port) or process.poll() is not None, 30, what="ZEO to listen")
    assert process.poll() is None, (directory / "zeo.log").read_text()
    return process, f"127.0.0.1:{port}"


def zeo_client(address):
    return (f"<zodb_db main>\n  mount-point /\n  <zeoclient>\n    server {address}\n    storage 1\n"
            "    blob-dir $INSTANCE/var/blobcache\n    shared-blob-dir off\n  </zeoclient>\n</zodb_db>")


def run_script(conf, script):
    """`txzserver run CONF SCRIPT` as the site Job runs it: (exit status, output)."""
    result = subprocess.run([TXZSERVER, "run", str(conf), str(script)], capture_output=True,
                            text=True, timeout=600, cwd=conf.parent.parent)
    return result.returncode, result.stdout + result.stderr


def one_round(directory):
    """Two instances and a script started at once on a new ZEO; returns the round's facts."""
    zeo, address = start_empty_zeo(directory / "zeo")
    confs = {name: new_instance(directory / name, storage=zeo_client(address))
             for name in ("instance-1", "instance-2", "job")}
    script = directory / "script.py"
    script.write_text(SCRIPT)
    servers = {name: ServerProcess(confs[name]) for name in ("instance-1", "instance-2")}
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            starts = {name: pool.submit(server.start, 600) for name, server in servers.items()}
            job = pool.submit(run_script, confs["job"], script)
            for name, start in starts.items():
                start.result()  # re-raises here why an instance did not start (its log)
            status, output = job.result()
        assert status == 0, output
        for name, server in servers.items():
            assert httpx.get(server.url("/"), timeout=30).status_code == 200, name  # the root's view
        logs = {name: (directory / name / "log" / "event.log").read_text(errors="replace")
                for name in confs}
        # the same script alone on the database made: Zope's list of addable types as a start
        # that met no other process makes it (Plone lists four names twice of its own)
        status, alone = run_script(confs["job"], script)
        assert status == 0, alone
        retries = {name: log.count(RETRIED) for name, log in logs.items()}
        return {"output": output, "alone": alone, "retries": retries, "logs": logs}
    finally:
        for server in servers.values():
            server.stop()
        zeo.terminate()
        zeo.wait(30)


def meta_types(output):
    (names,) = [line.split(" ", 1)[1] for line in output.splitlines() if line.startswith("meta_types ")]
    return json.loads(names)


def test_processes_starting_together_on_a_new_database_all_start(tmp_path):
    rounds = []
    for number in range(1, ROUNDS + 1):
        facts = one_round(tmp_path / f"round-{number}")
        lines = facts["output"].splitlines()
        assert f"contents {STANDARD_CONTENTS}" in lines, facts["output"]
        assert meta_types(facts["output"]) == meta_types(facts["alone"])
        rounds.append(facts["retries"])
        if sum(facts["retries"].values()):
            break
    record("test_first_start", "test_processes_starting_together_on_a_new_database_all_start",
           rounds=len(rounds), retries=rounds)
    retried = [name for name, count in rounds[-1].items() if count]
    assert retried, (f"no process collided with another in {ROUNDS} rounds ({rounds}): "
                     "the test did not meet the race it is about")
    for name in retried:
        assert "another process made it at the same time" in facts["logs"][name]
