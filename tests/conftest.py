"""Session-wide settings of every test run: where Zope processes keep compiled page templates,
and the order modules are handed to pytest-xdist's workers."""

import os
import resource
import tempfile
import time
from pathlib import Path

import pytest

#: Wall seconds of the longest integration modules (summed from test-artifacts/pytest.xml of one
#: `make test` run on 2 cores with `stress-ng --cpu 1` beside it). Only
#: an ordering hint: with `--dist loadfile --no-loadscope-reorder` (the Makefile's) each worker
#: takes the next module in this order when it is free, so the longest go first and the last ones
#: handed out are short (less time with one worker idle while the other finishes a long module).
#: A module not listed counts as ``UNLISTED``.
WALL_SECONDS = {
    "test_upgrade.py": 220, "test_backup.py": 285, "test_webdav.py": 248, "test_degraded.py": 184,
    "test_notifications.py": 179, "test_http3.py": 90, "test_websocket_h3.py": 78,
    "test_bus_nats.py": 144, "test_ctl.py": 126, "test_server.py": 122,
    "test_http1_hostile.py": 102, "test_tasks_nats_durable.py": 94, "test_http2_hostile.py": 93,
    "test_ws_hostile.py": 92, "test_tasks_nats.py": 79, "test_release.py": 65,
    "test_tasks_zmq.py": 62, "test_first_start.py": 61, "test_mail.py": 53,
    "test_principal_changes.py": 48, "test_rapid_reset.py": 46, "test_bad_input.py": 45,
    "test_tasks.py": 44, "test_health.py": 41, "test_bus_heartbeat.py": 38,
    "test_toast_links.py": 33, "test_relstorage.py": 32, "test_listen_durable.py": 31,
    "test_browser_toast.py": 30, "test_streaming.py": 30, "test_front_limits.py": 30,
    "test_plone_events.py": 26, "test_browser_wsh2.py": 29, "test_websocket_h2.py": 27,
    "test_bus_auth.py": 25, "test_connection_slots.py": 25, "test_revocation.py": 24,
    "test_webdav_hostile.py": 22, "test_spool_full.py": 21, "test_sendfile.py": 21,
    "test_files.py": 20, "test_tasks_nats_queue.py": 20, "test_canonical_url.py": 18,
    "test_plone_actor.py": 15,
}
UNLISTED = 15
#: The same for the image's smoke tests (`make smoke`, three workers, before the stack's), from
#: a quiet run: each module is a chain of container starts, so a long one handed out last would
#: leave two workers idle.
SMOKE_WALL_SECONDS = {
    "test_image_env.py": 160, "test_image.py": 150, "test_image_delete_existing.py": 150,
    "test_image_commands.py": 110, "test_image_ctl.py": 94, "test_image_python.py": 40,
    "test_image_size.py": 22,
}


def pytest_configure(config):
    """Zope processes started by the tests share one Chameleon cache (CHAMELEON_CACHE, read by
    Chameleon in every process): a server's first Plone page then loads the compiled templates
    instead of compiling them again (~1.5 s of CPU per server started, measured). The files are
    named by a digest of the template and written with a rename, so concurrent writers are safe."""
    if "CHAMELEON_CACHE" not in os.environ:
        cache = Path(tempfile.gettempdir()) / f"txzserver-tests-chameleon-{os.getuid()}"
        cache.mkdir(mode=0o700, exist_ok=True)
        os.environ["CHAMELEON_CACHE"] = str(cache)


def module_weight(item):
    path = Path(str(item.fspath))
    if path.parent.name == "smoke":
        return SMOKE_WALL_SECONDS.get(path.name, 0)
    if path.parent.name != "integration":
        return 0  # unit tests: short, they fill the end
    return WALL_SECONDS.get(path.name, UNLISTED)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Longest modules first (a stable sort, after pytest grouped a module's tests by its
    fixtures' parameters: tests keep their order inside a module)."""
    items.sort(key=lambda item: -module_weight(item))


def cpu_seconds():
    """CPU seconds of this process and of its children that ended (a module's servers, once
    stopped; the session's shared servers count at its end)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class ModuleTimeline:
    """When this process ran each test module (first test's start to last test's end) and the
    CPU it and the processes it started used meanwhile, appended to the file named by
    TEST_TIMELINE at the session's end as ``worker\tmodule\tstart\tend\tcpu`` lines:
    tools/test-all.sh sets it and tools/where_time_went.py shows each xdist worker's span (a
    run's tail: one worker still busy while the others wait) and the modules that cost most CPU
    (on a machine kept busy, what a shorter run must take out)."""

    def __init__(self, path, worker):
        self.path, self.worker, self.spans = path, worker, {}

    def pytest_runtest_logstart(self, nodeid, location):
        module = nodeid.split("::", 1)[0]
        if module not in self.spans:
            now, cpu = time.time(), cpu_seconds()
            self.spans[module] = [now, now, cpu, cpu]

    def pytest_runtest_logfinish(self, nodeid, location):
        span = self.spans[nodeid.split("::", 1)[0]]
        span[1], span[3] = time.time(), cpu_seconds()

    def pytest_sessionfinish(self):
        lines = "".join(f"{self.worker}\t{module}\t{start:.1f}\t{end:.1f}\t{cpu_end - cpu_start:.1f}\n"
                        for module, (start, end, cpu_start, cpu_end) in self.spans.items())
        with open(self.path, "a") as timeline:
            timeline.write(lines)


def pytest_sessionstart(session):
    path = os.environ.get("TEST_TIMELINE")
    config = session.config
    controller = not hasattr(config, "workerinput") and config.getoption("numprocesses", None)
    if path and not controller:  # xdist's controller only hears the workers' reports
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        config.pluginmanager.register(ModuleTimeline(path, worker), "module-timeline")
