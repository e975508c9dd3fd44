"""Helpers of the podman smoke test (tests/kube/test_podman.py): commands, HTTP, waits, images
moved from the local Docker engine into podman, restart counts, crashes from the host, page loads.
"""

import base64
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

DOCKER = "/usr/bin/docker"


def run(*args, check=True, timeout=120, stdin=None):
    """A command's CompletedProcess; with ``check``, a failure raises with its output."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}: "
                             f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5, headers=None):
    """(status, body) of a GET; (None, error) when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as exc:
        return None, str(exc)


def get_json(url, timeout=5):
    """The JSON of a 200 answer, else None."""
    status, body = http_get(url, timeout)
    return json.loads(body) if status == 200 else None


def wait_for(condition, timeout, what, interval=1.0, explain=None):
    """The condition's first true result; on timeout an AssertionError naming ``what``, with
    ``explain()`` (the state that tells why) when given."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s" + (f"\n{explain()}" if explain else ""))
        time.sleep(interval)


def podman_image(source, name):
    """A Docker image in podman under a tag made of its id (pulled from Docker when new):
    localhost/txzserver-kube/NAME:id-ID."""
    image_id = run(DOCKER, "image", "inspect", "--format", "{{.Id}}", source).stdout.strip()
    reference = f"localhost/txzserver-kube/{name}:id-{image_id.removeprefix('sha256:')[:12]}"
    if run("podman", "image", "exists", reference, check=False).returncode != 0:
        run("podman", "pull", "-q", f"docker-daemon:{source}", timeout=300)
        run("podman", "tag", image_id.removeprefix("sha256:"), reference)
    return reference


def restart_count(container):
    return int(run("podman", "inspect", "--format", "{{.RestartCount}}", container).stdout.strip() or 0)


def not_crash_looping(container):
    """Fail at once, with its last log lines, when a container keeps restarting."""
    restarts = restart_count(container)
    if restarts >= 3:
        log = run("podman", "logs", "--tail", "5", container, check=False)
        raise AssertionError(f"{container} restarted {restarts} times: {log.stdout}{log.stderr}")


def logs(container):
    result = run("podman", "logs", container, check=False)
    return result.stdout + result.stderr


def kill_main_process(container):
    """SIGKILL the container's main process from the host, as a crash or the OOM killer would.

    Not `podman kill`/`podman pod kill`: podman 4.3 marks a container so killed as stopped by
    the user and never restarts it, whatever its restart policy (the kubelet would).
    """
    pid = run("podman", "inspect", "--format", "{{.State.Pid}}", container).stdout.strip()
    assert int(pid) > 0, pid
    if os.geteuid() == 0:
        os.kill(int(pid), signal.SIGKILL)
    else:  # rootless podman: the process belongs to the user namespace's mapped uid
        run("podman", "unshare", "kill", "-KILL", pid)


def authorization(password):
    return "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()


def rest(port, password, method, path, body=None, timeout=30):
    """(status, JSON) of a plone.restapi call as admin on 127.0.0.1:PORT."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode())
    request.add_header("Accept", "application/json")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", authorization(password))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def rendered_probe_passes(container, probe, container_ports):
    """Run a rendered tcpSocket/httpGet probe from inside the container's pod (its network)."""
    if "tcpSocket" in probe:
        port = probe["tcpSocket"]["port"]
        code = "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 3).close()"
    elif "httpGet" in probe:
        port = probe["httpGet"]["port"]
        code = ("import sys,urllib.request; urllib.request.urlopen("
                f"'http://127.0.0.1:'+sys.argv[1]+{probe['httpGet']['path']!r}, timeout=3)")
    else:
        raise AssertionError(f"{container}: probe kind not handled: {probe}")
    port = container_ports.get(port, port)
    result = run("podman", "exec", container, "python3", "-c", code, str(port), check=False, timeout=30)
    return result.returncode == 0


class Poller(threading.Thread):
    """GET a URL in a loop until stopped; every (monotonic time, status) is kept."""

    def __init__(self, url, interval=0.1, timeout=30, name=None):
        super().__init__(daemon=True, name=name or f"poll-{url}")
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.results = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            status, _ = http_get(self.url, timeout=self.timeout)
            self.results.append((time.monotonic(), status))
            self.stopping.wait(self.interval)

    def failed(self):
        return [result for result in self.results if result[1] != 200]

    def stop(self):
        self.stopping.set()
        self.join(self.timeout + 10)


class DurableListener(threading.Thread):
    """`txzserver listen --durable NAME` (this venv's) on the given NATS server URLs, its JSON
    lines kept in ``events``; ``stop`` sends SIGINT, as a person stopping it, and returns the
    exit status. Its stderr goes to ``log_path``."""

    def __init__(self, name, servers, log_path, *options):
        super().__init__(daemon=True, name=f"listen-durable-{name}")
        command = [str(pathlib.Path(sys.executable).with_name("txzserver")), "listen",
                   "--durable", name, *options]
        for url in servers:
            command += ["--nats-server", url]
        self.errors = open(log_path, "a")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.errors, text=True)
        self.events = []

    def run(self):
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(30)
        self.join(10)
        self.errors.close()
        return status
