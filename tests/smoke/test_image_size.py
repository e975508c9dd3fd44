"""Budgets of the Plone image (issue 15): its size and how fast a new container serves a new site.

Needs only the built image (`make images`), not the compose stack. SMOKE_IMAGE selects another
image than txzserver/plone:latest (e.g. one built with IMAGE_PREFIX). Both numbers are recorded as
test properties (`--junitxml`) and printed (`pytest -s`).
"""

import os
import subprocess
import time
import urllib.request
import uuid

import pytest

from .conftest import DOCKER

NEEDS_STACK = False
IMAGE = os.environ.get("SMOKE_IMAGE", "txzserver/plone:latest")
SIZE_LIMIT_MB = 450       # `docker images` megabytes (10**6 bytes)
FIRST_200_LIMIT_S = 15    # `docker run` to the first 200 on /Plone, site made on the way


@pytest.fixture(scope="session", autouse=True)
def both_instances_in_the_pool():
    """Overrides the conftest's wait for the compose stack: nothing here uses it."""


def docker(*args, check=True, timeout=120):
    return subprocess.run([DOCKER, *args], check=check, capture_output=True, text=True, timeout=timeout)


def test_image_size(record_property):
    size_mb = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout) / 1e6
    record_property("image_size_mb", round(size_mb, 1))
    print(f"{IMAGE}: {size_mb:.0f} MB")
    assert size_mb < SIZE_LIMIT_MB, f"{IMAGE} is {size_mb:.0f} MB, the budget is {SIZE_LIMIT_MB} MB"


def first_200_seconds():
    """A new container with a new volume: seconds from `docker run` to the first 200 on /Plone
    (instance start, addPloneSite, first page)."""
    name = f"txzsmoke-first200-{uuid.uuid4().hex[:6]}"
    start = time.monotonic()
    docker("run", "-d", "--name", name, "-e", "SITE=Plone", "-e", "ADMIN_PASSWORD=first-200-Secret",
           "-p", "127.0.0.1::8080", IMAGE)
    try:
        port = int(docker("port", name, "8080/tcp").stdout.splitlines()[0].rsplit(":", 1)[1])
        deadline = start + 4 * FIRST_200_LIMIT_S
        status = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/Plone", timeout=5) as response:
                    status = response.status
            except OSError:
                status = None
            if status == 200:
                break
            running = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
            assert running == "true", f"{name} exited:\n{docker('logs', name).stderr[-3000:]}"
            time.sleep(0.1)
        elapsed = time.monotonic() - start
        logs = docker("logs", name).stderr[-3000:]
        assert status == 200, f"no 200 on /Plone within {elapsed:.0f} s:\n{logs}"
        return elapsed
    finally:
        docker("rm", "-fv", name, check=False)


def test_new_site_answers_within_budget(record_property):
    """The best of up to two new containers (this runs beside the smoke stack on a shared CI
    machine: one start during a burst of its load took 48 s where 6-8 s is usual)."""
    tries = []
    while len(tries) < 2 and (not tries or min(tries) > FIRST_200_LIMIT_S):
        tries.append(first_200_seconds())
        print(f"{IMAGE}: first 200 on a new site after {tries[-1]:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    record_property("first_200_seconds", round(min(tries), 1))
    assert min(tries) <= FIRST_200_LIMIT_S, f"first 200 after {tries} s (budget {FIRST_200_LIMIT_S} s)"
