"""components/volto as an operator adds it to the development overlay's pieces: the rendered objects
pass the checks every overlay passes (strict schemas, confinement, probes, limits, tags), the
front routes to Volto and serves its server-side rendering on the internal listener, the site
Job makes a Volto site, and the NetworkPolicies let only the front reach Volto and Volto only
the front's internal listener (evaluated on the pods' labels). Part of `make kube-lint`."""

import re

import pytest

from tests.kube import test_manifests as every_overlay
from tests.kube.manifests import (
    KUSTOMIZE_ROOT, environment, find, pod_template, render_variant, who_reaches)

DEV_PIECES = ["components/zeo", "components/nats", "components/nats-single", "components/front",
              "components/front-self-signed"]


def expanded(container, objects):
    """The container's environment with Kubernetes' $(NAME) references to earlier variables
    replaced, as the kubelet does."""
    env = environment(container, objects, field_values={"metadata.namespace": "txzserver"})
    return {name: re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)
            for name, value in env.items()}


@pytest.fixture(scope="module")
def volto(tmp_path_factory):
    return render_variant(tmp_path_factory.mktemp("volto"),
                          [*DEV_PIECES, "components/volto", "components/images"])


@pytest.mark.parametrize("check", [
    every_overlay.test_overlay_validates_strictly.__name__,
    every_overlay.test_every_container_is_confined.__name__,
    every_overlay.test_writable_places_are_volumes.__name__,
    every_overlay.test_every_container_has_requests_and_limits.__name__,
    every_overlay.test_long_running_containers_have_three_probes.__name__,
    every_overlay.test_images_have_a_tag_and_never_latest.__name__,
    every_overlay.test_everything_in_one_namespace.__name__,
])
def test_passes_what_every_overlay_passes(volto, check, tmp_path):
    function = getattr(every_overlay, check)
    if "tmp_path" in function.__code__.co_varnames[:function.__code__.co_argcount]:
        function(("volto", volto), tmp_path)
    else:
        function(("volto", volto))


def test_volto_runs_the_image_behind_the_front(volto):
    deployment = find(volto, "Deployment", "volto")
    container = pod_template(deployment)["spec"]["containers"][0]
    assert container["image"].startswith("txzserver/volto:")
    env = expanded(container, volto)
    assert env["RAZZLE_INTERNAL_API_PATH"] == "http://front-internal.txzserver.svc.cluster.local:8080/Plone"
    assert "RAZZLE_API_PATH" not in env  # the browsers' API: the page's own origin
    front = pod_template(find(volto, "Deployment", "front"))["spec"]["containers"][0]
    front_env = expanded(front, volto)
    assert front_env["VOLTO_ADDRESS"] == "volto.txzserver.svc.cluster.local:3000"
    assert {"name": "volto-api", "containerPort": 8080} in front["ports"]
    internal = find(volto, "Service", "front-internal")["spec"]
    assert internal.get("type", "ClusterIP") == "ClusterIP" and internal["ports"][0]["port"] == 8080
    public = find(volto, "Service", "front")["spec"]
    assert 8080 not in {p["port"] for p in public["ports"]}
    job = pod_template(find(volto, "Job", "create-site"))["spec"]["containers"][0]
    assert environment(job, volto)["TYPE"] == "volto"


def test_front_config_has_the_volto_routes_of_compose():
    """The Kubernetes front's Volto rules are the compose front's, line for line (comments aside)."""
    def volto_rules(path):
        lines = path.read_text().splitlines()
        start = lines.index(next(line for line in lines if "acl volto_api path /++api++" in line))
        end = lines.index(next(line for line in lines[start:] if line.startswith("    use_backend volto")))
        return [line for line in lines[start:end + 1] if not line.lstrip().startswith("#")]

    assert volto_rules(KUSTOMIZE_ROOT / "components" / "front" / "haproxy.cfg") == \
        volto_rules(KUSTOMIZE_ROOT.parent / "haproxy.cfg")


def test_only_the_front_reaches_volto_and_volto_only_the_front(volto):
    assert who_reaches(volto, "volto", 3000) == {"front"}
    assert "volto" in who_reaches(volto, "front", 8080)
    assert "volto" not in who_reaches(volto, "instance", 8080)
    assert "volto" not in who_reaches(volto, "zeo", 8100)
    # the front's internal listener is Volto's alone
    assert who_reaches(volto, "front", 8080) == {"volto"}
