"""components/smtp: the instances' SMTP egress (NetworkPolicy smtp-egress, evaluated on the pods'
labels) alone and with the parameters an operator sets by the block of
docs/operators/kubernetes.md (read from the page, rendered here): the policy then follows the
image's SMTP_* settings, which the image's mail_conf.py accepts."""

import re
import subprocess
import sys

import pytest
import yaml

from tests.kube import netpol
from tests.kube.manifests import (
    ROOT, by_kind, cluster_pods, environment, find, pod_template, render_variant)

DOCS = ROOT / "docs" / "operators" / "kubernetes.md"
MAIL_CONF = ROOT / "images" / "plone" / "scripts" / "mail_conf.py"


def documented_block():
    """The YAML block of the docs' Mail section that sets the parameters in an overlay."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    found = [yaml.safe_load(block) for block in blocks if "SMTP_NAMESPACE=" in block]
    assert len(found) == 1, "one YAML block with the SMTP parameters in the docs"
    return found[0]


@pytest.fixture(scope="module", params=["dev", "production"])
def with_smtp(request, tmp_path_factory):
    return request.param, render_variant(tmp_path_factory.mktemp(request.param), ["components/smtp"],
                                         resources=(f"overlays/{request.param}",))


@pytest.fixture(scope="module")
def with_parameters(tmp_path_factory):
    """production + components/smtp + the documented parameters block."""
    block = documented_block()
    assert block["components"] == ["../../components/smtp"]
    fields = {key: value for key, value in block.items() if key not in ("components", "resources")}
    return render_variant(tmp_path_factory.mktemp("parameters"), ["components/smtp"],
                          resources=("overlays/production",), **fields)


def relay(namespace, port):
    return netpol.Pod(f"relay-{namespace}", namespace, {"app": "smtp-relay"},
                      {"kubernetes.io/metadata.name": namespace}, {"smtp": (port, "TCP")})


def reaches(objects, source, target, port):
    policies = list(by_kind(objects, "NetworkPolicy").values())
    return netpol.allowed(policies, cluster_pods(objects)[source], target, port)


def instance_env(objects):
    return environment(pod_template(find(objects, "Deployment", "instance"))["spec"]["containers"][0],
                       objects)


def agree(objects):
    """The NetworkPolicy's namespace and port are the ConfigMap's SMTP_NAMESPACE and SMTP_PORT,
    and SMTP_HOST names a Service of that namespace."""
    env = instance_env(objects)
    rule, = find(objects, "NetworkPolicy", "smtp-egress")["spec"]["egress"]
    namespace = rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    port, = rule["ports"]
    assert (namespace, port) == (env["SMTP_NAMESPACE"], {"protocol": "TCP", "port": int(env["SMTP_PORT"])})
    assert env["SMTP_HOST"].split(".")[1] == namespace
    return env


def test_the_component_alone_opens_only_its_default_relay(with_smtp):
    """Without the parameters: egress to namespace mail, port 587, and no mail settings (the
    image sends nothing)."""
    _, objects = with_smtp
    assert not any(key.startswith("SMTP_") for key in instance_env(objects))
    assert reaches(objects, "instance", relay("mail", 587), 587)
    assert not reaches(objects, "instance", relay("mail", 25), 25)
    assert not reaches(objects, "instance", relay("default", 587), 587)
    for other in ("create-site", "pack", "intruder"):
        assert not reaches(objects, other, relay("mail", 587), 587), other


def test_without_the_component_no_smtp_leaves(overlay):
    _, objects = overlay
    assert "smtp-egress" not in by_kind(objects, "NetworkPolicy")
    assert "SMTP_HOST" not in instance_env(objects)
    assert not reaches(objects, "instance", relay("mail", 587), 587)


def test_the_documented_parameters_move_the_policy_with_the_settings(with_parameters):
    env = agree(with_parameters)
    assert (env["SMTP_PORT"], env["SMTP_NAMESPACE"]) != ("587", "mail")
    port = int(env["SMTP_PORT"])
    assert reaches(with_parameters, "instance", relay(env["SMTP_NAMESPACE"], port), port)
    assert not reaches(with_parameters, "instance", relay("mail", 587), 587)
    assert env["SMTP_USER"] and env["SMTP_PASSWORD_FILE"] == "/run/secrets/smtp/password"


def test_the_relay_password_is_an_optional_file(with_smtp):
    _, objects = with_smtp
    spec = pod_template(find(objects, "Deployment", "instance"))["spec"]
    volume = {v["name"]: v for v in spec["volumes"]}["smtp-password"]["secret"]
    assert volume == {"secretName": "txzserver-smtp", "optional": True, "defaultMode": 0o440,
                      "items": [{"key": "password", "path": "password"}]}
    mount = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}["smtp-password"]
    assert mount == {"name": "smtp-password", "mountPath": "/run/secrets/smtp", "readOnly": True}


def test_the_image_accepts_the_rendered_settings(with_parameters, tmp_path):
    env = {key: value for key, value in instance_env(with_parameters).items()
           if key.startswith("SMTP_") and key != "SMTP_NAMESPACE"}
    (tmp_path / "password").write_text("x")  # the mounted Secret's file, here the test's
    env["SMTP_PASSWORD_FILE"] = str(tmp_path / "password")
    made = subprocess.run([sys.executable, str(MAIL_CONF), str(tmp_path / "mail.conf")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "mail.conf").read_text()
    assert f"  smtp-host {env['SMTP_HOST']}\n" in text and f"  smtp-port {env['SMTP_PORT']}\n" in text
    assert "  from-name Example Plone\n" in text
