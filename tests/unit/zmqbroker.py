"""A real `txzserver broker` on ipc:// sockets in a temporary directory, for the bus tests.

Waiting is always on a condition with a deadline (ZeroMQ subscriptions take a moment to
reach the publisher: the "slow joiner"), never a fixed sleep.
"""

import contextlib
import os
import shutil
import tempfile
import threading
import time

import zmq

from txzserver.bus.broker import run_broker

DEADLINE = 10.0


def short_dir(tmp_path):
    """tmp_path, or a shorter temporary directory: ipc:// paths are limited to ~100 bytes."""
    if len(str(tmp_path)) < 60:
        return str(tmp_path), None
    path = tempfile.mkdtemp(prefix="txz")
    return path, path


@contextlib.contextmanager
def running_broker(tmp_path, sub="run", base=None):
    cleanup = None
    if base is None:
        base, cleanup = short_dir(tmp_path)
    directory = os.path.join(base, sub)
    frontend, backend = f"ipc://{directory}/pub.sock", f"ipc://{directory}/sub.sock"
    ready, stop = threading.Event(), threading.Event()
    result = []
    thread = threading.Thread(target=lambda: result.append(run_broker(frontend, backend, ready, stop)),
                              name="test-broker", daemon=True)
    thread.start()
    try:
        assert ready.wait(DEADLINE), "broker did not bind"
        yield Broker(frontend, backend, directory, thread, stop, result)
    finally:
        stop.set()
        thread.join(DEADLINE)
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)


class Broker:
    def __init__(self, frontend, backend, directory, thread, stop, result):
        self.frontend = frontend
        self.backend = backend
        self.directory = directory
        self.thread = thread
        self.stop = stop
        self.result = result


def wait_for(condition, pump=None, timeout=DEADLINE, what="condition"):
    """Call ``pump`` until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if pump is not None:
            pump()
        else:
            time.sleep(0.005)


def poll_readable(sockets, timeout_ms=20):
    """Wait (at most ``timeout_ms``) until one of ``sockets`` has a message."""
    poller = zmq.Poller()
    for sock in sockets:
        poller.register(sock, zmq.POLLIN)
    poller.poll(timeout_ms)
