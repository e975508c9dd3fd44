"""The dev overlay's workloads on a real container runtime: `podman kube play` (`make kube-smoke`).

The dev overlay is rendered with its images pointed at the locally built ones (an `images:`
override, as an operator sets a registry; the tag is the image id, never `latest`). ZEO, the
broker, one instance and the site-creation Job run as pods derived from the rendered workloads
(tests/kube/pods.py says what is filled in for podman), on a podman network of their own. The
instance is reached on 127.0.0.1 through a hostPort. Checked: the Job makes the site over ZEO and
the instance serves it; every container runs as uid 500, non-root, on a read-only root
filesystem, with no capability, no privilege gain and seccomp; the health endpoints when the
image has the health listener. podman has no NetworkPolicies: tests/kube/test_manifests.py
evaluates them.
"""

import base64
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from tests.kube.manifests import KUSTOMIZE_ROOT, find, render
from tests.kube.pods import as_pod

pytestmark = [pytest.mark.timeout(300)]


@pytest.fixture(scope="module", autouse=True)
def podman_installed():
    if shutil.which("podman") is None:
        pytest.fail("needs podman: `make kube-smoke` installs it (images/podman-host.sh)")

DOCKER = "/usr/bin/docker"
# the locally built image (`make images`); KUBE_SMOKE_IMAGE picks another one
SOURCE_IMAGE = os.environ.get("KUBE_SMOKE_IMAGE", "txzserver/plone:latest")
RUN_CONTAINERS = ("zeo-zeo", "broker-broker", "instance-instance")


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
    ports = {"http": free_port(), "health": free_port()}
    pods = [
        as_pod(find(objects, "StatefulSet", "zeo"), "zeo", objects, values),
        as_pod(find(objects, "Deployment", "broker"), "broker", objects, values),
        as_pod(find(objects, "Deployment", "instance"), "instance", objects, values, ports),
        as_pod(find(objects, "Job", "create-site"), "create-site", objects, values),
    ]
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(yaml.safe_dump_all(pods))
    network = f"txzkube{os.getpid()}"
    run("podman", "network", "create", network)
    try:
        run("podman", "kube", "play", "--network", network, str(manifest), timeout=180)
        yield {"objects": objects, "ports": ports, "password": password, "image": reference,
               "started": started, "manifest": manifest}
    finally:
        logs = pathlib.Path(os.environ.get("KUBE_SMOKE_LOGS", tmp_path / "logs"))
        logs.mkdir(parents=True, exist_ok=True)
        for container in RUN_CONTAINERS + ("create-site-create-site",):
            result = run("podman", "logs", container, check=False)
            (logs / f"{container}.log").write_text(result.stdout + result.stderr)
        run("podman", "kube", "down", str(manifest), check=False, timeout=120)
        run("podman", "network", "rm", "-f", network, check=False)


def not_crash_looping(container):
    """Fail at once, with its last log lines, when a container keeps restarting."""
    restarts = int(run("podman", "inspect", "--format", "{{.RestartCount}}", container).stdout.strip() or 0)
    if restarts >= 3:
        log = run("podman", "logs", "--tail", "5", container, check=False)
        raise AssertionError(f"{container} restarted {restarts} times: {log.stdout}{log.stderr}")


def test_the_site_job_makes_the_site_and_the_instance_serves_it(stack):
    url = f"http://127.0.0.1:{stack['ports']['http']}"

    def site_served():
        not_crash_looping("instance-instance")
        response = http_get(f"{url}/Plone")
        return response if response[0] == 200 else None

    status, body = wait_for(site_served, 180, "GET /Plone through the instance's hostPort", interval=2)
    assert "Plone" in body
    state = json.loads(run("podman", "inspect", "create-site-create-site").stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    log = run("podman", "logs", "create-site-create-site").stdout
    assert "site /Plone created" in log or "site /Plone exists already" in log
    # the instance's own Zope answers too, and names itself after the pod
    status, _ = http_get(f"{url}/")
    assert status in (200, 401)
    print(f"instance served /Plone {time.monotonic() - stack['started']:.1f} s after the start")


def test_admin_password_from_the_secret_works(stack):
    url = f"http://127.0.0.1:{stack['ports']['http']}/Plone/@@overview-controlpanel"
    request = urllib.request.Request(url)
    token = base64.b64encode(f"admin:{stack['password']}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=20) as response:
        assert response.status == 200


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
    out = run("podman", "exec", "instance-instance", "sh", "-c",
              "touch /data/tmp/probe /tmp/probe && echo ok").stdout
    assert out.strip() == "ok"


def test_health_endpoints(stack):
    base = f"http://127.0.0.1:{stack['ports']['health']}"
    for path in ("/healthz/startup", "/healthz/live", "/healthz/ready"):
        status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(http_get(base + path)),
                                60, f"GET {path}")
        assert status == 200, (path, body)
