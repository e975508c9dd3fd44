"""A txzserver (or waitress) process under test: start, wait until it listens, measure, stop."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .instance import TXZSERVER

LISTENING = re.compile(r"txzserver (\S+) listening on (\w+)://(\S+):(\d+)")


def wait_for(condition, timeout, interval=0.1, what="condition"):
    """Poll ``condition`` until it returns a true value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


#: Runs argv[1:] with SIGINT ignored, as a background job of a non-interactive shell starts.
SIGINT_IGNORED = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN);"
                  " os.execv(sys.argv[1], sys.argv[1:])")


def sigint_ignored_argv(conf):
    """``txzserver serve CONF`` started with SIGINT ignored (the process inherits that)."""
    return [sys.executable, "-c", SIGINT_IGNORED, TXZSERVER, "serve", str(conf)]


class ServerProcess:
    """``txzserver serve CONF`` in its own session; ports are read from its event log."""

    def __init__(self, conf, argv=None, env=None):
        self.conf = Path(conf)
        self.instance = self.conf.parent.parent
        self.event_log = self.instance / "log" / "event.log"
        self.output_path = self.instance / "log" / "output.log"
        self.argv = argv or [TXZSERVER, "serve", str(self.conf)]
        self.env = env
        self.process = None
        self.ports = {}

    def start(self, timeout=120):
        self.output = open(self.output_path, "ab")
        self.process = subprocess.Popen(self.argv, stdout=self.output, stderr=subprocess.STDOUT,
                                        start_new_session=True, env=self.env)
        self.ports = wait_for(self._listening, timeout, 0.2, f"{self.argv} to listen")
        return self

    def _listening(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_text()}")
        text = self.event_log.read_text(errors="replace") if self.event_log.exists() else ""
        if "txzserver ready" not in text:
            return None
        return {kind: int(port) for kind, _, _, port in LISTENING.findall(text)}

    def log_text(self):
        parts = []
        for path in (self.event_log, self.output_path):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def log_tail(self, lines=40):
        """The last ``lines`` lines of the event log and the output, for failure messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_exit(self, timeout):
        """Wait for the process to exit after a signal; its status. On timeout the failure
        carries the log's tail, so a server that hangs in its shutdown explains itself."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not exit within {timeout}s; its log ends:\n"
                                 f"{self.log_tail()}") from None

    @property
    def pid(self):
        return self.process.pid

    def rss(self):
        return rss_bytes(self.pid)

    @property
    def port(self):
        """The cleartext port (txzserver's http listener, or waitress's)."""
        return self.ports.get("http") or self.ports["waitress"]

    def url(self, path="/", kind="http"):
        scheme = "https" if kind == "https" else "http"
        port = self.port if kind == "http" else self.ports[kind]
        return f"{scheme}://127.0.0.1:{port}{path}"

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signal the server and wait; return its exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise
        finally:
            self.output.close()


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
