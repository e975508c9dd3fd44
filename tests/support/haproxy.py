"""Debian's HAProxy on a rendered front configuration, for the tests that put the real front
before real instances: the configuration checked (`haproxy -c`), the process started in the
foreground on free ports, and waited for until it listens. A process that exits (a bad
certificate, a bad configuration) fails the test at once with its log, instead of a later
"connection refused"; one that found a port taken is started again on new ports."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tests.support.server import free_port, wait_for


class PortTaken(Exception):
    """HAProxy could not bind a port: another process took it after free_port() chose it."""


def start(write_config, env, log_path, names=("https", "monitor"), listen="https",
          timeout=60, attempts=3):
    """HAProxy on free ports: ``write_config(ports)`` writes the configuration for ``{name:
    port}`` (one free port per name in NAMES) and returns its path; returns (process, ports)
    once the ``listen`` port accepts connections. A port taken after free_port() chose it is
    tried again on new ports."""
    for attempt in range(attempts):
        ports = {name: free_port() for name in names}
        try:
            return _start(write_config(ports), env, log_path, ports[listen], timeout), ports
        except PortTaken:
            if attempt == attempts - 1:
                raise


def _start(config, env, log_path, port, timeout):
    """haproxy -db -f CONFIG, its output in LOG_PATH; returns once PORT (any of its listeners:
    HAProxy binds them all before it serves) accepts connections."""
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
