"""`txzserver ctl` in the plone image's standalone role (supervisord running zeo, broker and the
instance): `docker exec ... txzserver ctl status` and `restart instance`, with their exit codes.
Needs only the built image (SMOKE_IMAGE, default txzserver/plone:latest), not the stack."""

import os
import re
import time
import uuid

import pytest

from .test_image import docker, wait_http

NEEDS_STACK = False
IMAGE = os.environ.get("SMOKE_IMAGE", "txzserver/plone:latest")
NAME = f"txzsmoke-ctl-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session", autouse=True)
def both_instances_in_the_pool():
    """Overrides the conftest's wait for the compose stack: nothing here uses it."""


@pytest.fixture(scope="module")
def standalone():
    docker("run", "-d", "--name", NAME, "-e", "ROLE=standalone", "-p", "127.0.0.1::8080", IMAGE)
    try:
        wait_http(NAME, 8080, "/")
        yield NAME
    finally:
        docker("rm", "-fv", NAME, check=False)


def ctl(name, *args):
    return docker("exec", name, "txzserver", "ctl", *args, check=False, timeout=120)


def all_running(name, timeout=30):
    """`ctl status` once supervisord calls every program RUNNING: it does so only `startsecs`
    (5 s for the instance) after the start, while the instance may answer HTTP before."""
    deadline = time.monotonic() + timeout
    while True:
        result = ctl(name, "status")
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_status_lists_the_three_programs_running(standalone):
    result = all_running(standalone)
    assert result.returncode == 0, result.stdout + result.stderr
    for program in ("zeo", "broker", "instance"):
        assert re.search(rf"^{program}\s+RUNNING\s+pid \d+", result.stdout, re.M), result.stdout


def test_restart_instance_and_unknown_names(standalone):
    before = re.search(r"^instance\s+RUNNING\s+pid (\d+)", all_running(standalone).stdout, re.M)
    result = ctl(standalone, "restart", "instance")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "instance: stopped" in result.stdout and "instance: started" in result.stdout
    after = re.search(r"^instance\s+RUNNING\s+pid (\d+)", all_running(standalone).stdout, re.M)
    assert before and after and before.group(1) != after.group(1)
    wait_http(standalone, 8080, "/")
    assert ctl(standalone, "status", "nosuch").returncode == 2
