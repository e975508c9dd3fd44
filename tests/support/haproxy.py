"""Debian's HAProxy on a rendered front configuration, for the tests that put the real front
before real instances: the configuration checked (`haproxy -c`), the process started in the
foreground, and waited for until it listens. A process that exits (a port taken, a bad
certificate) fails the test at once with its log, instead of a later "connection refused"."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tests.support.server import wait_for


class PortTaken(Exception):
    """HAProxy could not bind a port: another process took it after free_port() chose it."""


def start(config, env, log_path, port, timeout=60):
    """haproxy -db -f CONFIG, its output in LOG_PATH; returns once PORT (any of its listeners:
    HAProxy binds them all before it serves) accepts connections. PortTaken when a port was
    taken meanwhile (the caller renders the configuration again on other ports)."""
    haproxy = shutil.which("haproxy") or pytest.fail("haproxy is missing: apt-get install haproxy")
    check = subprocess.run([haproxy, "-c", "-f", str(config)], env=env, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with open(log_path, "wb") as log:
        process = subprocess.Popen([haproxy, "-db", "-f", str(config)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)

    def alive():
        if process.poll() is not None:
            log = log_path.read_text(errors="replace")[-3000:]
            if "cannot bind socket" in log:
                raise PortTaken(log)
            pytest.fail(f"haproxy exited with {process.returncode}:\n{log}")

    def listening():
        alive()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False

    try:
        wait_for(listening, timeout, 0.1, what=f"haproxy to listen on port {port}")
        # what answered may be another process on a taken port: HAProxy, failing to bind, exits
        # within milliseconds of its start
        time.sleep(0.3)
        alive()
    except BaseException:
        stop(process)
        raise
    return process


def stop(process):
    """SIGTERM to HAProxy's process group; waits for it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)
