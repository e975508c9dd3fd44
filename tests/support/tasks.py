"""Helpers of the task queue tests: queue through the test view, count committed runs."""

import re
import time

import httpx

from .instance import ADMIN

HIT = re.compile(r"TASKHIT (\S+) (\S+) (\S+) attempt=(\d+)")


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
