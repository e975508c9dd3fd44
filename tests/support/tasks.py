"""Helpers of the task queue tests: queue through the test view, count committed runs."""

import re
import time

import httpx

from .instance import ADMIN, with_task_views
from .server import wait_for

HIT = re.compile(r"TASKHIT (\S+) (\S+) (\S+) attempt=(\d+)")


def task_views(name):
    """An instance's ``prepare``: the test task views in its conf, its name in their log lines."""
    return lambda conf: dict(with_task_views(conf), TXZ_TEST_INSTANCE=name)


def queue(server, count, target="test-task-hit", prefix="t", user=ADMIN, path="/Plone", **form):
    params = {"count": count, "target": target, "prefix": prefix, **form}
    return httpx.get(server.url(f"{path}/@@test-queue-tasks"), params=params, auth=user, timeout=60)


def hits(servers, prefix):
    """[(name, instance, user, attempt)] of committed runs whose name starts with ``prefix``."""
    found = []
    for server in servers:
        found += [h for h in HIT.findall(server.event_log.read_text(errors="replace"))
                  if h[0].startswith(prefix)]
    return found


def wait_hits(servers, prefix, count, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        found = hits(servers, prefix)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(found)} of {count} {prefix}* tasks ran within {timeout}s")
        time.sleep(0.2)


def wait_log(server, text, timeout=60):
    deadline = time.monotonic() + timeout
    while text not in server.event_log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in {server.event_log} within {timeout}s")
        time.sleep(0.2)


def counts(server, prefix):
    """{name: committed runs} of the count tasks (@@test-task-count) whose name starts with
    ``prefix``: the ZODB itself says how often each task committed."""
    response = httpx.get(server.url("/Plone/@@test-task-counts"), auth=ADMIN, timeout=30)
    assert response.status_code == 200, response.text[:300]
    return {name: n for name, n in response.json().items() if name.startswith(prefix)}


def exactly_once(server, prefix, total, settle, timeout=180):
    """Every one of ``total`` count tasks committed, each once, also ``settle`` seconds later
    (two ack-waits: a redelivery that wrongly ran again would show by then)."""
    wait_for(lambda: len(counts(server, prefix)) >= total, timeout, 0.5,
             what=f"{total} {prefix}* tasks committed")
    time.sleep(settle)
    found = counts(server, prefix)
    assert sorted(found) == sorted(f"{prefix}{i}" for i in range(total))
    assert set(found.values()) == {1}, {name: n for name, n in found.items() if n != 1}
    return found
