"""The dev overlay's workloads on a real container runtime: `podman kube play` (`make k8s-smoke`).

The dev overlay is rendered with its images pointed at the locally built ones (an `images:`
override, as an operator sets a registry; the tag is the image id, never `latest`). ZEO, the
broker, two instances (the Deployment's template twice, as two replicas: pods instance-1 and
instance-2) and the site-creation Job run as pods derived from the rendered workloads
(tests/kube/pods.py says what is filled in for podman), on a podman network of their own. Each
instance is reached on 127.0.0.1 through hostPorts of its own for 8080 (http), 8081 (health)
and 8082 (metrics).
Checked: ZEO and the broker pass their rendered readiness probes and both instances' readiness
endpoints say ready; the Job makes the site over ZEO and both instances serve it; a document
made through instance-1 (plone.restapi, the admin password of the Secret) is read through
instance-2, and a WebSocket client on instance-2 receives its `created` event (over the broker,
tcp://broker:5559/5560); the instances' livenessProbe, as podman runs it, passes; no container
restarted before the test's own kill (the instances and the Job start together on the empty
database: Zope's first start retries its collisions, txzserver.zope.firststart); the waits for a
start are the rendered startupProbe's budget; instance-2's main process SIGKILLed from the host
(a crash: `podman kill` would mark it stopped by the user, never restarted) during a page-load
loop is restarted by the pod's restart policy (the Deployment's, Always: Kubernetes' default,
which podman applies to a pod without one) and serves again, the failed requests counted; every
container runs as uid 500, non-root, on a read-only root filesystem, with no capability, no
privilege gain and seccomp. podman has no NetworkPolicies: tests/kube/test_manifests.py evaluates them.
"""

import base64
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import threading

import pytest
import zmq
import yaml

from tests.kube.manifests import KUSTOMIZE_ROOT, find, pod_template, render
from tests.kube.pods import as_pod
from tests.support.wsclient import Collector, basic

pytestmark = [pytest.mark.timeout(900)]


@pytest.fixture(scope="module", autouse=True)
def podman_installed():
    if shutil.which("podman") is None:
        pytest.fail("needs podman: `make kube-smoke` installs it (images/podman-host.sh)")

DOCKER = "/usr/bin/docker"
# the locally built image (`make images`); KUBE_SMOKE_IMAGE picks another one
SOURCE_IMAGE = os.environ.get("KUBE_SMOKE_IMAGE", "txzserver/plone:latest")
INSTANCES = ("instance-1", "instance-2")
RUN_CONTAINERS = ("zeo-zeo", "broker-broker") + tuple(f"{pod}-instance" for pod in INSTANCES)
JOB_CONTAINER = "create-site-create-site"
# logged by txzserver.zope.firststart when a first start collided with another process's
FIRST_START_RETRY = "first start: ConflictError on"


def run(*args, check=True, timeout=120):
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body) of a GET; (None, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as exc:
        return None, str(exc)


def wait_for(condition, timeout, what, interval=1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def local_image():
    """The plone image in podman under a tag made of its id (pulled from Docker when new)."""
    image_id = run(DOCKER, "image", "inspect", "--format", "{{.Id}}", SOURCE_IMAGE).stdout.strip()
    reference = f"localhost/txzserver-kube/plone:id-{image_id.removeprefix('sha256:')[:12]}"
    if run("podman", "image", "exists", reference, check=False).returncode != 0:
        run("podman", "pull", "-q", f"docker-daemon:{SOURCE_IMAGE}", timeout=300)
        run("podman", "tag", image_id.removeprefix("sha256:"), reference)
    return reference


def render_dev(reference, tmp_path):
    """The dev overlay with the image override (a kustomization of our own around it)."""
    name, _, tag = reference.rpartition(":")
    wrapper = tmp_path / "overlay"
    wrapper.mkdir()
    dev = os.path.relpath(KUSTOMIZE_ROOT / "overlays" / "dev", wrapper)
    (wrapper / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [dev],
        "images": [{"name": "txzserver/plone", "newName": name, "newTag": tag}],
    }))
    return render(wrapper)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("kube")
    started = time.monotonic()
    reference = local_image()
    objects = render_dev(reference, tmp_path)
    password = secrets.token_urlsafe(12)
    values = {("txzserver-admin", "password"): password}
    # the Secret txzserver-bus: the broker's and the instances' CURVE key pairs (z85)
    for name, pair in (("broker", zmq.curve_keypair()), ("instance", zmq.curve_keypair())):
        values[("txzserver-bus", f"{name}-public")] = pair[0].decode()
        values[("txzserver-bus", f"{name}-secret")] = pair[1].decode()
    # each instance's own hostPorts for its http, health and metrics ports (podman 4.3 publishes
    # a containerPort without hostPort on the same host port: two instances would collide)
    ports = {pod: {"http": free_port(), "health": free_port(), "metrics": free_port()} for pod in INSTANCES}
    instance = find(objects, "Deployment", "instance")
    pods = [
        as_pod(find(objects, "StatefulSet", "zeo"), "zeo", objects, values),
        as_pod(find(objects, "Deployment", "broker"), "broker", objects, values),
        *(as_pod(instance, pod, objects, values, ports[pod]) for pod in INSTANCES),
        as_pod(find(objects, "Job", "create-site"), "create-site", objects, values),
    ]
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(yaml.safe_dump_all(pods))
    logs = pathlib.Path(os.environ.get("KUBE_SMOKE_LOGS", tmp_path / "logs"))
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "summary.txt").write_text("")
    network = f"txzkube{os.getpid()}"
    run("podman", "network", "create", network)
    try:
        run("podman", "kube", "play", "--network", network, str(manifest), timeout=180)
        yield {"objects": objects, "ports": ports, "password": password, "image": reference,
               "started": started, "manifest": manifest, "logs": logs}
    finally:
        for container in RUN_CONTAINERS + (JOB_CONTAINER,):
            result = run("podman", "logs", container, check=False)
            (logs / f"{container}.log").write_text(result.stdout + result.stderr)
        run("podman", "kube", "down", str(manifest), check=False, timeout=120)
        run("podman", "network", "rm", "-f", network, check=False)


def not_crash_looping(container):
    """Fail at once, with its last log lines, when a container keeps restarting."""
    restarts = restart_count(container)
    if restarts >= 3:
        log = run("podman", "logs", "--tail", "5", container, check=False)
        raise AssertionError(f"{container} restarted {restarts} times: {log.stdout}{log.stderr}")


def startup_budget(objects):
    """Seconds the rendered startupProbe of the instances allows a start (the kubelet's wait)."""
    probe = pod_template(find(objects, "Deployment", "instance"))["spec"]["containers"][0]["startupProbe"]
    return probe["periodSeconds"] * probe["failureThreshold"]


def restart_count(container):
    return int(run("podman", "inspect", "--format", "{{.RestartCount}}", container).stdout.strip() or 0)


def summary(stack, line):
    """A line of the run's summary (printed, and kept in KUBE_SMOKE_LOGS/summary.txt)."""
    print(line)
    with open(stack["logs"] / "summary.txt", "a") as out:
        out.write(line + "\n")


def authorization(password):
    return "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()


def api(stack, pod, method, path, body=None, timeout=30):
    """(status, JSON) of a plone.restapi call as admin through one instance's hostPort."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack['ports'][pod]['http']}{path}", method=method,
        data=None if body is None else json.dumps(body).encode())
    request.add_header("Accept", "application/json")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", authorization(stack["password"]))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def site_served(stack, pod):
    """GET /Plone through an instance's hostPort, the response when it is a 200."""
    not_crash_looping(f"{pod}-instance")
    # the first render of /Plone after a start compiles templates: seconds on a busy machine
    response = http_get(f"http://127.0.0.1:{stack['ports'][pod]['http']}/Plone", timeout=30)
    return response if response[0] == 200 else None


def ready(stack, pod):
    """The instance's readiness endpoint (health port 8081, through its hostPort) says ready."""
    status, _ = http_get(f"http://127.0.0.1:{stack['ports'][pod]['health']}/healthz/ready", timeout=3)
    return status == 200


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


def test_database_broker_and_two_instances_reach_ready(stack):
    """ZEO and the broker pass their rendered readiness probes; both instances say ready."""
    for kind, name in (("StatefulSet", "zeo"), ("Deployment", "broker")):
        spec = pod_template(find(stack["objects"], kind, name))["spec"]
        (container,) = spec["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        probe = container["readinessProbe"]
        wait_for(lambda: rendered_probe_passes(f"{name}-{container['name']}", probe, ports),
                 90, f"{name}'s readiness probe ({probe})", interval=1)
    for pod in INSTANCES:
        wait_for(lambda: not_crash_looping(f"{pod}-instance") or ready(stack, pod),
                 startup_budget(stack["objects"]), f"{pod}: GET /healthz/ready on its health hostPort",
                 interval=1)
    summary(stack, f"zeo, broker, {' and '.join(INSTANCES)} ready "
                   f"{time.monotonic() - stack['started']:.1f} s after the start")


def test_the_site_job_makes_the_site_and_both_instances_serve_it(stack):
    for pod in INSTANCES:
        status, body = wait_for(lambda: site_served(stack, pod), startup_budget(stack["objects"]),
                                f"GET /Plone through {pod}'s hostPort", interval=2)
        assert "Plone" in body
    state = json.loads(run("podman", "inspect", "create-site-create-site").stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    log = run("podman", "logs", "create-site-create-site").stdout
    assert "site /Plone created" in log or "site /Plone exists already" in log
    # the instance's own Zope answers too
    status, _ = http_get(f"http://127.0.0.1:{stack['ports']['instance-1']['http']}/")
    assert status in (200, 401)
    retries = {container: count_in_log(container, FIRST_START_RETRY)
               for container in (*(f"{pod}-instance" for pod in INSTANCES), JOB_CONTAINER)}
    summary(stack, f"both instances served /Plone "
                   f"{time.monotonic() - stack['started']:.1f} s after the start; "
                   f"first-start collisions retried: {retries}")


def count_in_log(container, text):
    result = run("podman", "logs", container, check=False)
    return (result.stdout + result.stderr).count(text)


def test_liveness_probe_as_podman_runs_it(stack):
    """podman runs the instances' livenessProbe (tests/kube/pods.py: podman_liveness) as a
    healthcheck that restarts the container when it fails, not counted during the startupProbe's
    whole budget; it passes on a started instance. podman schedules healthchecks with systemd
    timers: on a host without systemd (this one) they run only when asked, as here."""
    for pod in INSTANCES:
        container = f"{pod}-instance"
        config = json.loads(run("podman", "inspect", container).stdout)[0]["Config"]
        assert config["HealthcheckOnFailureAction"] == "restart"
        assert config["Healthcheck"]["StartPeriod"] == startup_budget(stack["objects"]) * 10**9
        result = run("podman", "healthcheck", "run", container, check=False, timeout=60)
        assert result.returncode == 0, (result.stdout, result.stderr)


def test_admin_password_from_the_secret_works(stack):
    for pod in INSTANCES:
        url = f"http://127.0.0.1:{stack['ports'][pod]['http']}/Plone/@@overview-controlpanel"
        request = urllib.request.Request(url)
        request.add_header("Authorization", authorization(stack["password"]))
        with urllib.request.urlopen(request, timeout=20) as response:
            assert response.status == 200


def test_a_document_made_through_one_instance_is_read_through_the_other(stack):
    """Created on instance-1 (plone.restapi), read on instance-2, whose WebSocket client
    receives the `created` event: the event crossed over the broker."""
    port = stack["ports"]["instance-2"]["http"]
    watcher = Collector(f"ws://127.0.0.1:{port}/Plone/ws", basic("admin", stack["password"]),
                        name="instance-2").start_and_wait(30)
    try:
        name = f"kube-{secrets.token_hex(4)}"
        status, created = api(stack, "instance-1", "POST", "/Plone",
                              {"@type": "Document", "id": name, "title": f"Made on instance-1 {name}"})
        assert status == 201, (status, created)
        assert created["@id"].endswith(f"/Plone/{name}")

        def read_on_instance_2():
            status, document = api(stack, "instance-2", "GET", f"/Plone/{name}")
            return document if status == 200 else None

        document = wait_for(read_on_instance_2, 15, f"GET /Plone/{name} through instance-2", interval=0.5)
        assert document["title"] == f"Made on instance-1 {name}"
        assert document["UID"] == created["UID"]
        (event, *_) = watcher.wait_for_event(timeout=20, type="created", path=f"/Plone/{name}")
        assert watcher.error is None, watcher.error
        summary(stack, f"document /Plone/{name} made on instance-1, read on instance-2; "
                       f"instance-2's WebSocket client got {event['type']} {event['path']}")
    finally:
        watcher.stop()


@pytest.mark.parametrize("container", RUN_CONTAINERS)
def test_security_context_is_applied(stack, container):
    inspect = json.loads(run("podman", "inspect", container).stdout)[0]
    assert inspect["State"]["Status"] == "running"
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    out = run("podman", "exec", container, "sh", "-c",
              "id -u; id -g; touch /probe 2>&1 || true;"
              " grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/1/status").stdout
    lines = out.splitlines()
    assert lines[:2] == ["500", "0"], out
    assert "Read-only file system" in lines[2], out
    status = dict(line.split(":\t") for line in lines[3:])
    assert status == {"CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}, out


def test_data_and_tmp_are_writable(stack):
    """The emptyDirs (/data, /tmp) take what the read-only root refuses."""
    out = run("podman", "exec", "instance-1-instance", "sh", "-c",
              "touch /data/tmp/probe /tmp/probe && echo ok").stdout
    assert out.strip() == "ok"


def test_health_endpoints(stack):
    for pod in INSTANCES:
        base = f"http://127.0.0.1:{stack['ports'][pod]['health']}"
        for path in ("/healthz/startup", "/healthz/live", "/healthz/ready"):
            status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(http_get(base + path)),
                                    60, f"GET {path} on {pod}")
            assert status == 200, (path, body)


def test_metrics_endpoint(stack):
    """METRICS_PORT 8082 of the manifests: Prometheus text with the server's own figures."""
    for pod in INSTANCES:
        url = f"http://127.0.0.1:{stack['ports'][pod]['metrics']}/metrics"
        status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(http_get(url)),
                                60, f"GET /metrics on {pod}")
        assert status == 200 and "txzserver_http_connections_max" in body, body[:500]
        assert "txzserver_publisher_threads" in body


class PageLoads(threading.Thread):
    """GET /Plone through an instance's hostPort in a loop; every result is kept."""

    def __init__(self, stack, pod, interval=0.1):
        super().__init__(daemon=True, name=f"loads-{pod}")
        self.url = f"http://127.0.0.1:{stack['ports'][pod]['http']}/Plone"
        self.interval = interval
        self.results = []  # (monotonic time, status or None)
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            status, _ = http_get(self.url, timeout=30)
            self.results.append((time.monotonic(), status))
            self.stopping.wait(self.interval)

    def failed(self):
        return [result for result in self.results if result[1] != 200]

    def stop(self):
        self.stopping.set()
        self.join(10)


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


def test_an_instance_killed_during_page_loads_comes_back(stack):
    """instance-2's main process SIGKILLed while both instances are loaded with page loads.

    The restart is the pod's restart policy as rendered: the Deployment leaves it unset, which
    is Always in Kubernetes and in `podman kube play` (the container's restart policy "always";
    no `--restart` of our own). instance-1 goes on serving meanwhile.
    """
    victim = "instance-2-instance"
    policy = run("podman", "inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", victim).stdout.strip()
    rendered = pod_template(find(stack["objects"], "Deployment", "instance"))["spec"]
    assert rendered.get("restartPolicy", "Always") == "Always"
    assert policy == "always", policy
    # nothing restarted before the kill: the instances and the Job starting together on the
    # empty database retry Zope's first start instead of exiting (txzserver.zope.firststart),
    # and no probe took a slow start for a dead one
    earlier = {container: restart_count(container) for container in RUN_CONTAINERS + (JOB_CONTAINER,)}
    assert earlier == dict.fromkeys(earlier, 0), (earlier, {
        container: run("podman", "logs", "--tail", "20", container, check=False).stderr[-2000:]
        for container, count in earlier.items() if count})
    restarts = 0
    loads = {pod: PageLoads(stack, pod) for pod in INSTANCES}
    for thread in loads.values():
        thread.start()
    try:
        wait_for(lambda: all(len(t.results) >= 5 and not t.failed() for t in loads.values()), 30,
                 "page loads answering on both instances before the kill", interval=0.2)
        killed = time.monotonic()
        kill_main_process(victim)
        wait_for(lambda: loads["instance-2"].failed(), 15, "a failed page load after the kill", interval=0.1)
        wait_for(lambda: restart_count(victim) > restarts, 30, f"{victim} restarted by podman", interval=0.5)
        wait_for(lambda: ready(stack, "instance-2") and site_served(stack, "instance-2"),
                 startup_budget(stack["objects"]),
                 "instance-2 ready and serving /Plone again after the kill", interval=0.5)
        back = time.monotonic()
        wait_for(lambda: any(t > back and status == 200 for t, status in loads["instance-2"].results), 15,
                 "a page load answered by the restarted instance-2", interval=0.2)
    finally:
        for thread in loads.values():
            thread.stop()
    survivor, victim_loads = loads["instance-1"], loads["instance-2"]
    failed = victim_loads.failed()
    after = [t for t, _ in failed if t > killed]
    assert failed and min(after) >= killed, failed
    summary(stack, f"instance-2 killed during page loads: back (ready, /Plone 200) "
                   f"{back - killed:.1f} s later, restarted by its restart policy Always "
                   f"(podman restart count {restart_count(victim)}; restarts before the kill: "
                   f"{sum(earlier.values())} of {len(earlier)} containers); instance-2: "
                   f"{len(failed)} of {len(victim_loads.results)} page loads failed, "
                   f"failures from {min(after) - killed:.1f} s to {max(after) - killed:.1f} s "
                   f"after the kill; "
                   f"instance-1: {len(survivor.failed())} of {len(survivor.results)} failed")
    assert not survivor.failed(), survivor.failed()
