"""`txzserver ctl` against a real supervisord running a host instance made by `mkinstance`
(its etc/supervisord.conf as written): status, restart, stop, start, tail, debug, exit codes."""

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.instance import TXZSERVER
from tests.support.server import free_port, wait_for

SUPERVISORD = str(Path(sys.executable).parent / "supervisord")


def ctl(conf, *args, stdin=None, timeout=120):
    return subprocess.run([TXZSERVER, "ctl", "-c", str(conf), *args], capture_output=True, text=True,
                          input=stdin, timeout=timeout)


def serving(port):
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code < 500
    except httpx.HTTPError:
        return False


def pid_of(conf):
    match = re.search(r"pid (\d+)", ctl(conf, "status").stdout)
    return int(match.group(1)) if match else None


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ctl") / "inst"
    port = free_port()
    subprocess.run([TXZSERVER, "mkinstance", str(directory), "--user", "admin:ctl-Secret-1",
                    "--address", f"127.0.0.1:{port}", "--threads", "2"], check=True, capture_output=True)
    conf = directory / "etc" / "supervisord.conf"
    log = open(directory / "log" / "supervisord.out", "wb")
    process = subprocess.Popen([SUPERVISORD, "-n", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: ctl(conf, "status").returncode == 0, 120, 0.5, what="the instance RUNNING")
        wait_for(lambda: serving(port), 120, 0.5, what="the instance serving")
        yield {"conf": conf, "port": port, "directory": directory}
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_status_of_a_running_instance(host):
    result = ctl(host["conf"], "status")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^instance\s+RUNNING\s+pid \d+", result.stdout, re.M), result.stdout


def test_restart_gives_a_new_serving_process(host):
    before = pid_of(host["conf"])
    result = ctl(host["conf"], "restart")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "instance: stopped" in result.stdout and "instance: started" in result.stdout
    after = pid_of(host["conf"])
    assert before and after and after != before
    wait_for(lambda: serving(host["port"]), 120, 0.5, what="the restarted instance serving")


def test_tail_shows_the_instance_log(host):
    result = ctl(host["conf"], "tail", "--bytes", "100000")
    assert result.returncode == 0 and "txzserver ready" in result.stdout


def test_unknown_program_is_a_usage_error(host):
    result = ctl(host["conf"], "status", "nosuch")
    assert result.returncode == 2 and "no program 'nosuch'" in result.stderr


def test_stop_status_debug_start(host):
    assert ctl(host["conf"], "stop").returncode == 0
    result = ctl(host["conf"], "status")
    assert result.returncode == 3 and "STOPPED" in result.stdout
    # the FileStorage is free now: debug opens it (piped stdin runs as a script)
    result = ctl(host["conf"], "debug", stdin="print('IDS', sorted(app.objectIds()))\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "IDS [" in result.stdout and "acl_users" in result.stdout
    assert ctl(host["conf"], "start").returncode == 0
    assert ctl(host["conf"], "status").returncode == 0
    wait_for(lambda: serving(host["port"]), 120, 0.5, what="the instance serving again")


def test_no_supervisord_is_exit_4(tmp_path):
    directory = tmp_path / "idle"
    subprocess.run([TXZSERVER, "mkinstance", str(directory), "--user", "admin:x-Secret-2"], check=True,
                   capture_output=True)
    result = ctl(directory / "etc" / "supervisord.conf", "status")
    assert result.returncode == 4 and "supervisord is not running" in result.stderr
