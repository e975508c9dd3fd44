"""The front image alone (no stack): its HAProxy is the pinned series, built with QUIC, and takes
both front configurations (compose's config/haproxy.cfg, baked in, and Kubernetes'
components/front/haproxy.cfg) without a warning beyond the one known, so that an HAProxy update
that deprecates a keyword we use fails here rather than at a start. SMOKE_FRONT_IMAGE selects
another image than txzserver/front:latest."""

import os
import re
import subprocess

import pytest

from .conftest import DOCKER, ROOT

NEEDS_STACK = False
IMAGE = os.environ.get("SMOKE_FRONT_IMAGE", "txzserver/front:latest")
#: the one warning both configurations give: the metrics frontend logs nothing on purpose
KNOWN_WARNINGS = ("log format ignored for frontend 'metrics' since it has no log address",)


@pytest.fixture(scope="session", autouse=True)
def both_instances_in_the_pool():
    """Overrides the conftest's wait for the compose stack: nothing here uses it."""


def haproxy(*args, volumes=(), env=()):
    argv = [DOCKER, "run", "--rm", "--entrypoint", "haproxy"]
    for host, container in volumes:
        argv += ["-v", f"{host}:{container}:ro"]
    for pair in env:
        argv += ["-e", pair]
    return subprocess.run([*argv, IMAGE, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed front.pem (certificate and key) readable by the image's user."""
    directory = tmp_path_factory.mktemp("front-cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
                   check=True, capture_output=True)
    pem = directory / "front.pem"
    pem.write_bytes((directory / "cert.pem").read_bytes() + (directory / "key.pem").read_bytes())
    pem.chmod(0o644)
    return pem


def test_haproxy_is_the_pinned_series_with_quic():
    dockerfile = (ROOT / "images" / "front" / "Dockerfile").read_text()
    series = re.search(r"^ARG HAPROXY_VERSION=(\S+)$", dockerfile, re.MULTILINE).group(1)
    result = haproxy("-vv")
    assert result.returncode == 0, result.stderr
    assert re.match(rf"HAProxy version {re.escape(series)}\.\d+", result.stdout), result.stdout[:200]
    assert " +QUIC " in result.stdout and " +PROMEX " in result.stdout


@pytest.mark.parametrize("config", ["compose", "kubernetes"])
def test_both_configurations_are_valid_without_new_warnings(config, certificate):
    volumes = [(certificate, "/etc/haproxy/certs/front.pem")]
    path = "/etc/haproxy/haproxy.cfg"
    if config == "kubernetes":
        volumes.append((ROOT / "config" / "kubernetes" / "components" / "front" / "haproxy.cfg",
                        "/tmp/kubernetes.cfg"))
        path = "/tmp/kubernetes.cfg"
    result = haproxy("-c", "-f", path, volumes=volumes,
                     env=("POD_NAMESPACE=txzserver", "CLUSTER_DOMAIN=invalid"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warnings = [line for line in output.splitlines() if "[WARNING]" in line or "[ALERT]" in line]
    unknown = [line for line in warnings if not any(known in line for known in KNOWN_WARNINGS)]
    assert not unknown, output
