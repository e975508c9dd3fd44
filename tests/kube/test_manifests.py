"""Policy tests on the rendered Kubernetes manifests (every overlay, as `kubectl kustomize` gives
them, and the ZeroMQ broker variant: base + components/broker): strict schema validation,
confinement, probes and limits of every container, images, the instances' shutdown budget,
storage, NATS and broker wiring (the rendered nats.conf checked by the real nats-server), and
the NetworkPolicies evaluated on the pods' labels (tests/kube/netpol.py). The NATS component's own
checks: test_manifests_nats.py. `make kube-lint` runs both (part of `make lint`).
"""

import re
import subprocess

import pytest
import yaml

from tests.kube import netpol
from tests.kube.manifests import (
    KUSTOMIZE_ROOT, KUBECTL, NAMESPACE, by_kind, cluster_pods, environment, find,
    pod_template, render_variant, secret_of, who_reaches, workloads)

HEALTH_PATHS = {"startupProbe": "/healthz/startup", "readinessProbe": "/healthz/ready",
                "livenessProbe": "/healthz/live"}
ZODB_CLIENTS = {"instance", "create-site", "upgrade", "pack"}


@pytest.fixture(scope="module")
def broker_variant(tmp_path_factory):
    """The bus on ZeroMQ instead of NATS: base, ZEO, components/broker, the front."""
    return render_variant(tmp_path_factory.mktemp("broker"), [
        "components/zeo", "components/broker", "components/front", "components/front-self-signed",
        "components/images"])


@pytest.fixture(scope="module", params=["dev", "production", "broker"])
def any_variant(request, dev, production, broker_variant):
    return request.param, {"dev": dev, "production": production, "broker": broker_variant}[request.param]


def all_containers(objects):
    """(workload, pod spec, container, is_init) for every container of every workload."""
    for workload in workloads(objects):
        spec = pod_template(workload)["spec"]
        for container in spec.get("initContainers", ()):
            yield workload, spec, container, True
        for container in spec["containers"]:
            yield workload, spec, container, False


def seconds(value):
    """ZConfig time interval ("20s", "1m", "20") in seconds."""
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", value).groups()
    return float(number) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def instance_env(objects):
    container = pod_template(find(objects, "Deployment", "instance"))["spec"]["containers"][0]
    return environment(container, objects)


# --- rendering and schemas -------------------------------------------------------------------

def test_kubectl_is_the_pinned_wheel():
    out = subprocess.run([str(KUBECTL), "version", "--client"], capture_output=True, text=True,
                         check=True).stdout
    assert "Client Version: v1.37" in out


def test_overlay_validates_strictly(overlay, tmp_path):
    name, objects = overlay
    rendered = tmp_path / f"{name}.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    result = subprocess.run([str(KUBECTL.with_name("kubernetes-validate")), "--strict", "--quiet",
                             str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(objects) > 15


def test_everything_in_one_namespace(overlay):
    _, objects = overlay
    assert {obj["metadata"].get("namespace") for obj in objects} == {NAMESPACE}


# --- every container -------------------------------------------------------------------------

def test_images_have_a_tag_and_never_latest(overlay):
    _, objects = overlay
    for workload, _, container, _ in all_containers(objects):
        image = container["image"]
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{workload['metadata']['name']}: {image} has no tag"
        assert tag and tag != "latest", f"{workload['metadata']['name']}: {image}"


def test_images_are_set_in_one_place():
    with_images = [path.relative_to(KUSTOMIZE_ROOT) for path in KUSTOMIZE_ROOT.rglob("kustomization.yaml")
                   if "images" in (yaml.safe_load(path.read_text()) or {})]
    assert [str(p) for p in with_images] == ["components/images/kustomization.yaml"]


def test_every_container_is_confined(overlay):
    _, objects = overlay
    for workload, spec, container, _ in all_containers(objects):
        where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
        pod_context, context = spec.get("securityContext", {}), container.get("securityContext", {})
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, where
        assert context.get("readOnlyRootFilesystem") is True, where
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not context.get("capabilities", {}).get("add"), where
        assert not context.get("privileged"), where
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), where


def test_writable_places_are_volumes(overlay):
    """With a read-only root, /tmp (and /data for the plone image) are volumes."""
    _, objects = overlay
    for workload, _, container, is_init in all_containers(objects):
        mounts = {m["mountPath"] for m in container.get("volumeMounts", ())}
        if not is_init:
            assert "/tmp" in mounts, f"{workload['metadata']['name']}/{container['name']}"
        if container["image"].startswith("txzserver/plone"):
            assert "/data" in mounts, f"{workload['metadata']['name']}/{container['name']}"


def test_every_container_has_requests_and_limits(overlay):
    _, objects = overlay
    for workload, _, container, _ in all_containers(objects):
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert set(resources.get(kind, {})) >= {"cpu", "memory"}, \
                f"{workload['metadata']['name']}/{container['name']} {kind}"


def test_long_running_containers_have_three_probes(overlay):
    _, objects = overlay
    for workload, _, container, is_init in all_containers(objects):
        if workload["kind"] in ("Job", "CronJob") or is_init:
            continue
        for probe in HEALTH_PATHS:
            assert probe in container, f"{workload['metadata']['name']}/{container['name']}: {probe}"


# --- instances --------------------------------------------------------------------------------

def test_instance_probes_use_the_health_listener(overlay):
    _, objects = overlay
    instance = find(objects, "Deployment", "instance")
    container = pod_template(instance)["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = environment(container, objects)
    assert ports["health"] == int(env["HEALTH_PORT"]) == 8081
    assert ports["http"] == 8080
    for probe, path in HEALTH_PATHS.items():
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, "health"), probe
    # the startup probe outlasts the entrypoint's wait for ZEO (ZEO_START_TIMEOUT, 120 s)
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > 120


def test_grace_period_outlasts_the_drain(overlay):
    """preStop sleep + SHUTDOWN_TIMEOUT < terminationGracePeriodSeconds: a rolling update
    lets every request finish before the kubelet's SIGKILL."""
    _, objects = overlay
    spec = pod_template(find(objects, "Deployment", "instance"))["spec"]
    container = spec["containers"][0]
    drain = seconds(environment(container, objects)["SHUTDOWN_TIMEOUT"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert int(pre_stop[1]) + drain < spec["terminationGracePeriodSeconds"]


def test_instances_get_config_and_secrets(overlay):
    _, objects = overlay
    for kind, name in (("Deployment", "instance"), ("Job", "create-site"), ("Job", "upgrade"),
                       ("CronJob", "pack")):
        container = pod_template(find(objects, kind, name))["spec"]["containers"][0]
        assert [s["configMapRef"]["name"] for s in container["envFrom"]] == \
            [n for n in by_kind(objects, "ConfigMap") if n.startswith("txzserver-zope-")]
    for kind, name in (("Deployment", "instance"), ("Job", "create-site")):
        spec = pod_template(find(objects, kind, name))["spec"]
        assert secret_of(spec, spec["containers"][0], "ADMIN_PASSWORD") == ("txzserver-admin", "password")


def test_production_mounts_its_secrets_as_files(production):
    """components/secret-files and components/postgresql: no password of a Zope process in its
    environment; each is a file of a read-only Secret volume, mode 0440 (group 0 reads it)."""
    for workload in workloads(production):
        spec = pod_template(workload)["spec"]
        if workload["metadata"]["name"] == "nats":  # nats-server reads $NATS_PASSWORD in nats.conf
            continue
        for container in spec["containers"]:
            refs = [var["name"] for var in container.get("env", ())
                    if "secretKeyRef" in var.get("valueFrom", {})]
            assert refs == [], (workload["metadata"]["name"], refs)
            for mount in container.get("volumeMounts", ()):
                volume = {v["name"]: v for v in spec["volumes"]}.get(mount["name"], {})
                if "secret" in volume:
                    assert mount["readOnly"] and mount["mountPath"].startswith("/run/secrets/")
                    assert volume["secret"]["defaultMode"] == 0o440


def test_instances_reach_the_broker_over_tcp(broker_variant):
    objects = broker_variant
    broker = find(objects, "Deployment", "broker")
    assert broker["spec"]["replicas"] == 1 and broker["spec"]["strategy"]["type"] == "Recreate"
    broker_container = pod_template(broker)["spec"]["containers"][0]
    broker_env = environment(broker_container, objects)
    bound = {name: int(broker_env[name].rpartition(":")[2])
             for name in ("EVENT_BUS_PUBLISH", "EVENT_BUS_SUBSCRIBE")}
    container_ports = {p["name"]: p["containerPort"] for p in broker_container["ports"]}
    service_ports = {p["port"]: container_ports[p["targetPort"]]
                     for p in find(objects, "Service", "broker")["spec"]["ports"]}
    instance_env = environment(pod_template(find(objects, "Deployment", "instance"))["spec"]
                               ["containers"][0], objects)
    for name, port in bound.items():
        host, _, service_port = instance_env[name].removeprefix("tcp://").rpartition(":")
        assert instance_env[name].startswith("tcp://") and host == "broker", instance_env[name]
        assert service_ports[int(service_port)] == port, name


def test_one_bus_per_variant(any_variant):
    """An overlay has the NATS bus or the ZeroMQ broker, never both, and the instances point at
    the one it has."""
    name, objects = any_variant
    env = instance_env(objects)
    has_nats = "nats" in by_kind(objects, "StatefulSet")
    has_broker = "broker" in by_kind(objects, "Deployment")
    assert (has_nats, has_broker) == ((False, True) if name == "broker" else (True, False))
    assert ("NATS_URL" in env) == has_nats and ("EVENT_BUS_PUBLISH" in env) == has_broker


def test_jobs_make_the_site_and_pack(overlay):
    _, objects = overlay
    job = pod_template(find(objects, "Job", "create-site"))["spec"]
    assert job["containers"][0]["args"] == ["create-site"]
    assert environment(job["containers"][0], objects)["SITE"] == "Plone"
    assert job["restartPolicy"] == "OnFailure"
    pack = find(objects, "CronJob", "pack")
    assert pack["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod_template(pack)["spec"]["containers"][0]["args"][0] == "pack"


# --- overlays ---------------------------------------------------------------------------------

def test_dev_is_one_instance_on_zeo(dev):
    assert find(dev, "Deployment", "instance")["spec"]["replicas"] == 1
    zeo = find(dev, "StatefulSet", "zeo")
    service = find(dev, "Service", "zeo")
    assert zeo["spec"]["serviceName"] == "zeo" and service["spec"]["clusterIP"] == "None"
    claim = zeo["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data"
    mounts = {m["name"]: m["mountPath"] for m in pod_template(zeo)["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["data"] == "/data"
    env = environment(pod_template(find(dev, "Deployment", "instance"))["spec"]["containers"][0], dev)
    assert env["ZEO_ADDRESS"] == f"zeo:{service['spec']['ports'][0]['port']}"
    assert "RELSTORAGE_DSN" not in env
    assert not by_kind(dev, "Ingress")


def test_dev_front_has_a_self_signed_certificate(dev):
    spec = pod_template(find(dev, "Deployment", "front"))["spec"]
    assert spec["initContainers"][0]["command"][:3] == ["openssl", "req", "-x509"]
    assert "emptyDir" in {v["name"]: v for v in spec["volumes"]}["certs"]


def test_front_finds_instances_through_the_headless_service(overlay):
    name, objects = overlay
    fronts = [n for n in by_kind(objects, "ConfigMap") if n.startswith("front-haproxy-")]
    if name == "production":
        assert not fronts
        return
    config = by_kind(objects, "ConfigMap")[fronts[0]]["data"]["haproxy.cfg"]
    assert find(objects, "Service", "instance")["spec"]["clusterIP"] == "None"
    # the instance slots are a parameter: INSTANCE_SLOTS in the front's environment, default 100
    assert config.count('server-template instance "1-${INSTANCE_SLOTS}" '
                        '"instance.${POD_NAMESPACE}.svc.${CLUSTER_DOMAIN}:8080"') == 2
    assert "presetenv INSTANCE_SLOTS 100" in config and "1-10 " not in config
    front = pod_template(find(objects, "Deployment", "front"))["spec"]["containers"][0]
    assert int(environment(front, objects)["INSTANCE_SLOTS"]) >= 100
    assert "parse-resolv-conf" in config and "127.0.0.11" not in config
    assert "uri /healthz/ready" in config and "check port 8081" in config
    assert "bind :8404" in config  # the kubelet probes the monitor URI on the pod address


def test_front_serves_http3_on_udp(overlay):
    """The front's HTTP/3: QUIC on UDP 8443 beside TCP 8443 (container, Service, NetworkPolicy),
    announced in Alt-Svc with the Service's port (HTTP3_PORT)."""
    name, objects = overlay
    if name == "production":  # the Gateway is the entry there
        assert "front" not in by_kind(objects, "Deployment")
        return
    config = next(data["data"]["haproxy.cfg"] for n, data in by_kind(objects, "ConfigMap").items()
                  if n.startswith("front-haproxy-"))
    assert "bind quic4@:8443 ssl crt /etc/haproxy/certs/front.pem alpn h3" in config
    assert 'Alt-Svc "h3=\\":${HTTP3_PORT}\\"; ma=86400"' in config
    front = pod_template(find(objects, "Deployment", "front"))["spec"]["containers"][0]
    ports = {(p["containerPort"], p.get("protocol", "TCP")): p["name"] for p in front["ports"]}
    assert ports[(8443, "TCP")] == "https" and ports[(8443, "UDP")] == "h3"
    service = {(p["port"], p.get("protocol", "TCP")): p["targetPort"]
               for p in find(objects, "Service", "front")["spec"]["ports"]}
    assert service == {(443, "TCP"): "https", (443, "UDP"): "h3"}
    assert environment(front, objects)["HTTP3_PORT"] == "443"
    assert who_reaches(objects, "front", 8443, "UDP") >= {"elsewhere"}


def test_production_scales_and_spreads(production):
    instance = find(production, "Deployment", "instance")
    assert "replicas" not in instance["spec"]  # the HorizontalPodAutoscaler's
    hpa = find(production, "HorizontalPodAutoscaler", "instance")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "instance" and hpa["spec"]["minReplicas"] >= 2
    pdb = find(production, "PodDisruptionBudget", "instance")
    labels = pod_template(instance)["metadata"]["labels"]
    assert netpol.selects(pdb["spec"]["selector"], labels)
    spread = pod_template(instance)["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(netpol.selects(c["labelSelector"], labels) for c in spread)


def test_production_uses_relstorage_from_a_secret(production):
    assert "zeo" not in by_kind(production, "StatefulSet")
    assert "postgresql" in by_kind(production, "StatefulSet")
    server = pod_template(find(production, "StatefulSet", "postgresql"))["spec"]
    database_password = secret_of(server, server["containers"][0], "POSTGRES_PASSWORD")
    assert database_password == ("txzserver-postgresql", "password")
    for kind, name in (("Deployment", "instance"), ("Job", "create-site"), ("Job", "upgrade"),
                       ("CronJob", "pack")):
        spec = pod_template(find(production, kind, name))["spec"]
        container = spec["containers"][0]
        env = environment(container, production)
        # the DSN built by the image from its parts and the database's own password file
        assert "RELSTORAGE_DSN" not in env and "ZEO_ADDRESS" not in env
        assert (env["RELSTORAGE_HOST"], env["RELSTORAGE_DBNAME"], env["RELSTORAGE_USER"]) == \
            ("postgresql", "zope", "zope")
        assert secret_of(spec, container, "RELSTORAGE_PASSWORD") == database_password, name
    server_env = {v["name"]: v.get("value") for v in server["containers"][0]["env"]}
    assert (server_env["POSTGRES_USER"], server_env["POSTGRES_DB"]) == ("zope", "zope")


def test_legacy_ingress_for_ingress_nginx(tmp_path):
    """The optional components/ingress-nginx (legacy) still renders as it did in production."""
    objects = render_variant(tmp_path, ["components/postgresql", "components/nats",
                                        "components/ingress-nginx"])
    ingress = find(objects, "Ingress", "txzserver")
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"][0]["secretName"] == "txzserver-tls"  # components/cert-manager's
    assert annotations[prefix + "proxy-buffering"] == "off"
    assert annotations[prefix + "proxy-request-buffering"] == "off"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600  # WebSockets
    assert annotations[prefix + "proxy-body-size"] == "1g"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "instance"
    assert who_reaches(objects, "instance", 8080) == {"ingress-nginx-controller"}
    legacy = (KUSTOMIZE_ROOT / "components/ingress-nginx/kustomization.yaml").read_text()
    assert legacy.startswith(
        "# legacy: ingress-nginx is retired upstream (no security fixes after March 2026)")


# --- NetworkPolicies, evaluated on the pods' labels ---------------------------------------------

def test_default_deny(overlay):
    _, objects = overlay
    deny = find(objects, "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny.get("ingress") and not deny.get("egress")


def test_only_zodb_clients_reach_the_database(overlay):
    name, objects = overlay
    database, port = ("zeo", 8100) if name == "dev" else ("postgresql", 5432)
    # and pg_dump's backups (components/backup-postgresql); ZEO's read its volume instead
    backup = {"backup-postgresql"} if database == "postgresql" else set()
    assert who_reaches(objects, database, port) == ZODB_CLIENTS | backup
    assert who_reaches(objects, database, 22) == set()


def test_only_instances_reach_the_broker(broker_variant):
    for port in (5559, 5560):
        assert who_reaches(broker_variant, "broker", port) == {"instance"}


def test_only_the_entry_reaches_the_instances(overlay):
    name, objects = overlay
    # production: the Gateway's proxies, in this namespace (Istio, NGINX Gateway Fabric) or
    # Envoy Gateway's
    entry = {"front"} if name == "dev" else {"gateway", "envoy-gateway"}
    assert who_reaches(objects, "instance", 8080) == entry
    if name == "dev":
        # clients from outside the namespace; the namespace's own other pods are egress-denied
        assert who_reaches(objects, "front", 8443) >= {"elsewhere", "ingress-nginx-controller"}
        assert who_reaches(objects, "instance", 8081) == {"front"}


def test_only_monitoring_scrapes_the_metrics(overlay):
    _, objects = overlay
    instance = pod_template(find(objects, "Deployment", "instance"))
    annotations = instance["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "8082"
    container = instance["spec"]["containers"][0]
    assert {"name": "METRICS_PORT", "value": "8082"} in container["env"]
    assert {"name": "metrics", "containerPort": 8082} in container["ports"]
    assert who_reaches(objects, "instance", 8082) == {"prometheus"}
    assert "prometheus" not in who_reaches(objects, "instance", 8080)


def test_every_pod_resolves_names(overlay):
    _, objects = overlay
    pods = cluster_pods(objects)
    own = {p for p in pods.values() if p.namespace == NAMESPACE and p.name != "intruder"}
    policies = list(by_kind(objects, "NetworkPolicy").values())
    for pod in own:
        assert netpol.allowed(policies, pod, pods["coredns"], 53, "UDP"), pod.name
        assert not netpol.allowed(policies, pod, pods["elsewhere"], 8080), pod.name


def test_the_evaluator_knows_the_rules():
    """netpol.allowed on hand-made cases: ingress and egress both needed, named ports, peers."""
    a = netpol.Pod("a", "ns", {"role": "a"}, {"kubernetes.io/metadata.name": "ns"})
    b = netpol.Pod("b", "ns", {"role": "b"}, {"kubernetes.io/metadata.name": "ns"}, {"web": (80, "TCP")})
    other_ns = netpol.Pod("c", "other", {"role": "a"}, {"kubernetes.io/metadata.name": "other"})

    def policy(selector, types, ingress=None, egress=None):
        spec = {"podSelector": selector, "policyTypes": types}
        if ingress is not None:
            spec["ingress"] = ingress
        if egress is not None:
            spec["egress"] = egress
        return {"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}

    assert netpol.allowed([], a, b, 80)
    deny = policy({}, ["Ingress", "Egress"])
    assert not netpol.allowed([deny], a, b, 80)
    to_b = policy({"matchLabels": {"role": "a"}}, ["Egress"], egress=[{"to": [{"podSelector": {}}]}])
    from_a = policy({"matchLabels": {"role": "b"}}, ["Ingress"],
                    ingress=[{"from": [{"podSelector": {"matchLabels": {"role": "a"}}}],
                              "ports": [{"port": "web"}]}])
    assert not netpol.allowed([deny, to_b], a, b, 80)       # no ingress rule yet
    assert netpol.allowed([deny, to_b, from_a], a, b, 80)
    assert not netpol.allowed([deny, to_b, from_a], a, b, 81)  # named port web is 80
    assert not netpol.allowed([deny, to_b, from_a], b, a, 80)
    assert not netpol.allowed([from_a], other_ns, b, 80)    # podSelector alone: own namespace
    assert not netpol.allowed([from_a], a, b, 80, "UDP")
