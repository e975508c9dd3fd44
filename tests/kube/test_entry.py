"""The production entry: components/gateway (Gateway API) and components/cert-manager, their
custom resources validated offline against the CRDs shipped in config/kubernetes/crds (Gateway
API standard channel, cert-manager), how they fit together (certificate Secret, host names,
routes to the instances, HSTS) and the parameters of overlays/production/entry-parameters.yaml
reaching every object that uses them.
"""

import copy
import re
import shutil

import pytest
import yaml

from tests.kube.crds import CRD_DIR, Validator
from tests.kube.manifests import (
    KUSTOMIZE_ROOT, ROOT, by_kind, config_maps, find, render, render_variant, who_reaches)

ENTRY_KINDS = ["Certificate", "Gateway", "HTTPRoute", "HTTPRoute", "Issuer"]
PARAMETERS = KUSTOMIZE_ROOT / "overlays/production/entry-parameters.yaml"
HSTS = "Strict-Transport-Security"


@pytest.fixture(scope="module")
def crds():
    return Validator()


def entry(objects, crds):
    return [obj for obj in objects if crds.knows(obj)]


def hsts(rule):
    """The HSTS value a route rule sets on its answers, or None."""
    for step in rule.get("filters", ()):
        if step["type"] == "ResponseHeaderModifier":
            for header in step["responseHeaderModifier"].get("set", ()):
                if header["name"] == HSTS:
                    return header["value"]
    return None


def seconds(duration):
    """A Gateway API duration ("1h", "10m", "1m30s", "0s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"([0-9]+)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def test_the_crds_are_shipped_with_their_source(crds):
    gateway, certificates = "gateway.networking.k8s.io/v1", "cert-manager.io/v1"
    assert {(gateway, "Gateway"), (gateway, "HTTPRoute"), (gateway, "GatewayClass"),
            (certificates, "Issuer"), (certificates, "ClusterIssuer"),
            (certificates, "Certificate")} <= set(crds.schemas)
    readme = (CRD_DIR / "README.md").read_text()
    for name in ("gateways", "httproutes", "gatewayclasses"):
        crd = yaml.load((CRD_DIR / f"gateway.networking.k8s.io_{name}.yaml").read_text(),
                        Loader=yaml.CSafeLoader)
        annotations = crd["metadata"]["annotations"]
        assert annotations["gateway.networking.k8s.io/channel"] == "standard"
        assert f"| {annotations['gateway.networking.k8s.io/bundle-version']}, " in readme
    assert "| v1.21.1, " in readme  # cert-manager's


def test_production_entry_validates_against_the_crds(production, crds):
    custom = entry(production, crds)
    assert sorted(obj["kind"] for obj in custom) == ENTRY_KINDS
    for obj in custom:
        assert crds.errors(obj) == [], (obj["kind"], obj["metadata"]["name"])
    assert not by_kind(production, "Ingress")  # ingress-nginx is legacy, not in production


def test_self_signed_variant_validates(tmp_path, crds):
    objects = render_variant(tmp_path, ["components/gateway", "components/cert-manager",
                                        "components/cert-manager-self-signed"])
    issuer = find(objects, "Issuer", "txzserver")
    assert issuer["spec"] == {"selfSigned": {}}
    for obj in entry(objects, crds):
        assert crds.errors(obj) == [], obj["kind"]


def test_the_validator_refuses_invalid_entry_resources(production, crds):
    production = copy.deepcopy(production)  # the module's rendering stays as it is
    gateway = find(production, "Gateway", "txzserver")
    gateway["spec"]["listeners"][0]["port"] = "443"
    gateway["spec"]["listeners"][1]["protocol"] = "HTTP 1"
    gateway["spec"]["gatewayClass"] = "eg"  # the field is gatewayClassName
    errors = crds.errors(gateway)
    assert [e.split(":")[0] for e in errors] == ["spec.listeners.0.port", "spec.listeners.1.protocol",
                                                 "spec"], errors
    assert errors[0] == "spec.listeners.0.port: '443' is not of type 'integer'"
    assert errors[2] == "spec: Additional properties are not allowed ('gatewayClass' was unexpected)"
    route = find(production, "HTTPRoute", "txzserver")
    route["spec"]["rules"][0]["timeouts"]["request"] = "1 hour"
    route["spec"]["rules"][1]["matches"][0]["path"]["type"] = "Prefix"  # Ingress's word
    assert crds.errors(route) == [
        "spec.rules.0.timeouts.request: '1 hour' does not match '^([0-9]{1,5}(h|m|s|ms)){1,4}$'",
        "spec.rules.1.matches.0.path.type: 'Prefix' is not one of "
        "['Exact', 'PathPrefix', 'RegularExpression']"]
    issuer = find(production, "Issuer", "txzserver")
    del issuer["spec"]["acme"]["server"]
    assert crds.errors(issuer) == ["spec.acme: 'server' is a required property"]
    certificate = find(production, "Certificate", "txzserver")
    certificate["spec"]["dnsName"] = certificate["spec"].pop("dnsNames")
    assert crds.errors(certificate) == [
        "spec: Additional properties are not allowed ('dnsName' was unexpected)"]


def test_gateway_serves_the_certificate_for_its_host(production):
    gateway = find(production, "Gateway", "txzserver")["spec"]
    certificate = find(production, "Certificate", "txzserver")["spec"]
    listeners = {listener["name"]: listener for listener in gateway["listeners"]}
    assert (listeners["https"]["protocol"], listeners["https"]["port"]) == ("HTTPS", 443)
    assert (listeners["http"]["protocol"], listeners["http"]["port"]) == ("HTTP", 80)
    tls = listeners["https"]["tls"]
    assert tls["mode"] == "Terminate"
    assert tls["certificateRefs"] == [{"kind": "Secret", "name": certificate["secretName"]}]
    host = listeners["https"]["hostname"]
    assert certificate["dnsNames"] == [host] and listeners["http"]["hostname"] == host
    for route in by_kind(production, "HTTPRoute").values():
        assert route["spec"]["hostnames"] == [host]
    # the HTTP-01 challenge is answered on the HTTP listener of this Gateway
    issuer = find(production, "Issuer", "txzserver")["spec"]
    assert certificate["issuerRef"] == {"kind": "Issuer", "name": "txzserver"}
    solver, = issuer["acme"]["solvers"]
    assert solver["http01"]["gatewayHTTPRoute"]["parentRefs"] == [
        {"name": "txzserver", "kind": "Gateway", "sectionName": "http"}]


def test_plain_http_only_redirects(production):
    redirect = find(production, "HTTPRoute", "txzserver-redirect")["spec"]
    assert redirect["parentRefs"] == [{"name": "txzserver", "sectionName": "http"}]
    rule, = redirect["rules"]
    assert "backendRefs" not in rule
    assert rule["filters"] == [{"type": "RequestRedirect",
                                "requestRedirect": {"scheme": "https", "statusCode": 301}}]
    routes = find(production, "HTTPRoute", "txzserver")["spec"]
    assert routes["parentRefs"] == [{"name": "txzserver", "sectionName": "https"}]


def test_routes_go_to_the_instances_with_hsts_and_timeouts(production):
    rules = {rule["name"]: rule for rule in find(production, "HTTPRoute", "txzserver")["spec"]["rules"]}
    assert list(rules) == ["websocket", "api", "downloads", "pages"]
    service = find(production, "Service", "instance")["spec"]
    max_age = yaml.safe_load(PARAMETERS.read_text())["data"]["hsts-max-age"]
    for name, rule in rules.items():
        assert rule["backendRefs"] == [{"name": "instance", "port": service["ports"][0]["port"]}], name
        assert hsts(rule) == f"max-age={max_age}", name
        timeouts = rule["timeouts"]
        # the CRD's CEL rule, which the offline validation does not evaluate
        if "backendRequest" in timeouts and seconds(timeouts["request"]):
            assert seconds(timeouts["backendRequest"]) <= seconds(timeouts["request"]), name
    # WebSockets: the paths the instances answer (/ws, /SITE/ws), never timed out
    site = next(data["WEBSOCKET_SITE"] for name, data in config_maps(production).items()
                if name.startswith("txzserver-zope-"))
    assert [m["path"] for m in rules["websocket"]["matches"]] == [
        {"type": "Exact", "value": "/ws"}, {"type": "Exact", "value": f"/{site}/ws"}]
    assert rules["websocket"]["timeouts"] == {"request": "0s"}
    assert rules["api"]["matches"] == [{"path": {"type": "PathPrefix", "value": "/++api++"}}]
    # downloads: an hour, as long as the legacy ingress' proxy-read-timeout
    assert seconds(rules["downloads"]["timeouts"]["request"]) >= 3600
    pattern = rules["downloads"]["matches"][0]["path"]["value"]
    for path in ("/Plone/file/@@download/file", "/Plone/doc/@@display-file/file",
                 "/Plone/image/@@images/image/preview", "/@@download"):
        assert re.fullmatch(pattern, path), path
    for path in ("/Plone/news", "/Plone/@@search", "/Plone/ws", "/Plone/my-download"):
        assert not re.fullmatch(pattern, path), path
    assert seconds(rules["pages"]["timeouts"]["request"]) >= 300
    assert rules["pages"]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


def test_hsts_max_age_is_the_fronts(production):
    front = (KUSTOMIZE_ROOT / "components/front/haproxy.cfg").read_text()
    max_age = yaml.safe_load(PARAMETERS.read_text())["data"]["hsts-max-age"]
    assert f"presetenv HSTS_MAX_AGE {max_age}\n" in front


def test_acme_solver_is_reachable_through_the_gateway(production):
    reaching = who_reaches(production, "acme-solver", 8089)
    assert {"gateway", "envoy-gateway", "elsewhere"} <= reaching
    assert who_reaches(production, "acme-solver", 8080) == set()
    # the Gateway's proxies in this namespace reach their control plane, not the rest
    assert who_reaches(production, "instance", 8081) == set()


def test_parameters_reach_every_object(tmp_path):
    """An operator's entry-parameters.yaml (a copy of config/kubernetes with other values)."""
    tree = tmp_path / "kubernetes"
    shutil.copytree(KUSTOMIZE_ROOT, tree)
    parameters = tree / "overlays/production/entry-parameters.yaml"
    document = yaml.safe_load(parameters.read_text())
    document["data"] = {"host": "www.example.org", "gateway-class": "istio", "hsts-max-age": "600",
                        "acme-email": "ops@example.org",
                        "acme-server": "https://acme-staging-v02.api.letsencrypt.org/directory"}
    parameters.write_text(yaml.safe_dump(document))
    objects = render(tree / "overlays/production")
    assert "entry-parameters" not in by_kind(objects, "ConfigMap")  # local-config: not applied
    gateway = find(objects, "Gateway", "txzserver")["spec"]
    assert gateway["gatewayClassName"] == "istio"
    assert {listener["hostname"] for listener in gateway["listeners"]} == {"www.example.org"}
    for route in by_kind(objects, "HTTPRoute").values():
        assert route["spec"]["hostnames"] == ["www.example.org"]
    rules = find(objects, "HTTPRoute", "txzserver")["spec"]["rules"]
    assert {hsts(rule) for rule in rules} == {"max-age=600"}
    assert find(objects, "Certificate", "txzserver")["spec"]["dnsNames"] == ["www.example.org"]
    acme = find(objects, "Issuer", "txzserver")["spec"]["acme"]
    assert (acme["email"], acme["server"]) == (
        "ops@example.org", "https://acme-staging-v02.api.letsencrypt.org/directory")


def test_the_docs_name_what_exists_and_what_make_lint_runs():
    """docs/operators/kubernetes.md: its components exist, its parameter table is
    entry-parameters.yaml's, and its render command is the one `make kube-render` runs."""
    docs = (ROOT / "docs/operators/kubernetes.md").read_text()
    for name in set(re.findall(r"`components/([a-z0-9-]+)`", docs)):
        assert (KUSTOMIZE_ROOT / "components" / name / "kustomization.yaml").exists(), name
    rows = re.findall(r"^  \| `([a-z-]+)` \| `?([^|`]+?)`? \|", docs, re.M)
    parameters = yaml.safe_load(PARAMETERS.read_text())["data"]
    assert [name for name, _ in rows if name in parameters] == list(parameters)
    for name, default in rows:
        if name in parameters and default != "Let's Encrypt":
            assert parameters[name] == default, name
    assert "kubectl kustomize config/kubernetes/overlays/production" in docs
    assert "$(BIN)/kubectl kustomize config/kubernetes/overlays/$$overlay" in (
        ROOT / "images/kubernetes.mk").read_text()
