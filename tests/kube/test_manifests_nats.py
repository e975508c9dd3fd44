"""Policy tests of components/nats on the rendered overlays (production: 3 nodes, dev: one with
components/nats-single): the StatefulSet (replicas, PersistentVolumeClaims, headless Service,
PodDisruptionBudget, anti-affinity, /healthz probes, non-root), the routes and the instances'
NATS_URL naming every node, the credentials from one Secret on both sides, the rendered
nats.conf checked by the real nats-server, and the NetworkPolicies of the NATS ports.
"""

import os
import pathlib
import re
import subprocess
import sys


from tests.kube import netpol
from tests.kube.manifests import (
    NAMESPACE, by_kind, cluster_pods, environment, find, pod_template,
    secret_of, who_reaches)


def instance_env(objects):
    container = pod_template(find(objects, "Deployment", "instance"))["spec"]["containers"][0]
    return environment(container, objects)


NATS_SERVER = pathlib.Path(sys.executable).with_name("nats-server")


def nats_files(objects):
    """The files of the ConfigMap mounted at /etc/nats (nats.conf, cluster.conf)."""
    spec = pod_template(find(objects, "StatefulSet", "nats"))["spec"]
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/etc/nats"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    return by_kind(objects, "ConfigMap")[volume["configMap"]["name"]]["data"]


def nats_env(objects):
    return environment(pod_template(find(objects, "StatefulSet", "nats"))["spec"]["containers"][0], objects)




def test_production_runs_a_three_node_nats_cluster(production):
    """Three nodes, each with its JetStream store on its own PersistentVolumeClaim, spread over
    hosts, at most one disrupted at a time, probed on /healthz of the monitoring port."""
    nats = find(production, "StatefulSet", "nats")
    replicas = nats["spec"]["replicas"]
    assert replicas == 3
    template = pod_template(nats)
    labels = template["metadata"]["labels"]
    (claim,) = nats["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    container = template["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"
    assert "store_dir: /data/jetstream" in nats_files(production)["nats.conf"]
    headless = find(production, "Service", nats["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert netpol.selects(headless["spec"]["selector"], labels)
    pdb = find(production, "PodDisruptionBudget", "nats")
    assert pdb["spec"]["maxUnavailable"] == 1 and netpol.selects(pdb["spec"]["selector"], labels)
    anti_affinity = template["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert netpol.selects(term["podAffinityTerm"]["labelSelector"], labels)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"client": 4222, "cluster": 6222, "monitor": 8222}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"].split("?")[0] == "/healthz" and get["port"] == "monitor", probe
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"  # JetStream current too
    security = template["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0 and security["fsGroup"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"].startswith("txzserver/nats:")


def test_routes_name_every_node_and_instances_name_every_node(production):
    """cluster.conf routes to nats-0..2 on the headless Service; the instances are given the
    same three names (the bus keeps 3 copies of its streams when it has 3 servers)."""
    nats = find(production, "StatefulSet", "nats")
    names = [f"nats-{i}.{nats['spec']['serviceName']}" for i in range(nats["spec"]["replicas"])]
    cluster = nats_files(production)["cluster.conf"]
    assert re.findall(r"nats-route://([\w.-]+):6222", cluster) == names
    assert "no_advertise: true" in cluster
    urls = instance_env(production)["NATS_URL"].split()
    assert urls == [f"nats://{name}:4222" for name in names]
    assert instance_env(production)["TASK_QUEUE_BACKEND"] == "nats"


def test_dev_runs_one_nats_node(dev):
    nats = find(dev, "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 1
    assert "cluster {" not in nats_files(dev)["cluster.conf"]
    service = find(dev, "Service", "nats")
    assert instance_env(dev)["NATS_URL"] == f"nats://nats:{service['spec']['ports'][0]['port']}"


def test_nats_credentials_come_from_the_secret(overlay):
    """nats.conf's only account user takes its password from the Secret txzserver-nats; the
    instances get the same user and Secret key."""
    _, objects = overlay
    conf = nats_files(objects)["nats.conf"]
    users = re.findall(r"\{ user: (\w+), password: \$(\w+) \}", conf)
    assert len(users) == 1 and "jetstream: enabled" in conf
    user, variable = users[0]
    container = pod_template(find(objects, "StatefulSet", "nats"))["spec"]["containers"][0]
    server_side = {v["name"]: v for v in container["env"]}[variable]["valueFrom"]["secretKeyRef"]
    spec = pod_template(find(objects, "Deployment", "instance"))["spec"]
    instance = spec["containers"][0]
    client_side = {v["name"]: v for v in instance["env"]}
    assert client_side["NATS_USER"]["value"] == user
    # a variable in dev, a mounted file in production (components/secret-files)
    assert secret_of(spec, instance, "NATS_PASSWORD") == (server_side["name"], server_side["key"]) == \
        ("txzserver-nats", "password")


def test_nats_server_accepts_the_rendered_config(overlay, tmp_path):
    """The real nats-server (the locked wheel's, as in the image) checks the rendered files."""
    _, objects = overlay
    for name, text in nats_files(objects).items():
        (tmp_path / name).write_text(text)
    result = subprocess.run([str(NATS_SERVER), "-t", "-c", str(tmp_path / "nats.conf")],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "POD_NAME": "nats-0", "NATS_PASSWORD": "checked"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_clients_reach_nats_and_only_nodes_route(overlay):
    """4222: instances and listen jobs; 6222 (routes): only another NATS node; 8222
    (monitoring): Prometheus' namespace; nothing else."""
    _, objects = overlay
    assert who_reaches(objects, "nats", 4222) == {"instance", "listen"}
    assert who_reaches(objects, "nats", 6222) == set()
    assert who_reaches(objects, "nats", 8222) == {"prometheus"}
    assert who_reaches(objects, "nats", 22) == set()
    policies = list(by_kind(objects, "NetworkPolicy").values())
    pods = cluster_pods(objects)
    node, peer = pods["nats"], netpol.Pod("nats-1", NAMESPACE, pods["nats"].labels,
                                          pods["nats"].namespace_labels, pods["nats"].ports)
    assert netpol.allowed(policies, node, peer, 6222) and netpol.allowed(policies, peer, node, 6222)
    assert not netpol.allowed(policies, node, peer, 4222)
    assert not netpol.allowed(policies, node, pods["instance"], 8080)
