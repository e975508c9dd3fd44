"""The podman stack of `make k8s-smoke` (tests/kube/test_podman*.py), built once per run: ZEO,
three NATS nodes, two instances and the site Job as pods derived from the rendered manifests, on
a podman network of the run's own; and the helpers its tests share (the instances' API, their
readiness, the NATS nodes' monitor, scripts run inside an instance, one-off Job pods).
"""

import json
import os
import pathlib
import secrets
import subprocess
import time

import yaml

from tests.kube.manifests import find, pod_template, render_variant
from tests.kube.pods import COPY_FOR, as_pod, mounted_config_maps
from tests.kube.podman import (
    free_port, get_json, http_get, logs, not_crash_looping, podman_image, rest, restart_count, run, wait_for)

PLONE_SOURCE = os.environ.get("KUBE_SMOKE_IMAGE", "txzserver/plone:latest")
NATS_SOURCE = os.environ.get("KUBE_SMOKE_NATS_IMAGE", "txzserver/nats:latest")
INSTANCES = ("instance-1", "instance-2")
NODES = ("nats-0", "nats-1", "nats-2")
JOB_CONTAINER = "create-site-create-site"
CONTENT_SCRIPT = pathlib.Path(__file__).with_name("smoke_content.py")


def nats_container(node):
    return f"{node}.nats-cluster-nats"


RUN_CONTAINERS = ("zeo-zeo", *(nats_container(node) for node in NODES),
                  *(f"{pod}-instance" for pod in INSTANCES))




def override(reference, name):
    image, _, tag = reference.rpartition(":")
    return {"name": name, "newName": image, "newTag": tag}



def podman_stack(tmp_path_factory):
    """The stack (the `stack` fixture's generator): rendered, played, yielded as a dict of what
    the tests need, then torn down with every container's log kept in KUBE_SMOKE_LOGS."""
    if subprocess.run(["sh", "-c", "command -v podman"], capture_output=True).returncode:
        raise AssertionError("needs podman: `make k8s-smoke` installs it (images/podman-host.sh)")
    tmp_path = tmp_path_factory.mktemp("kube")
    started = time.monotonic()
    images = {"plone": podman_image(PLONE_SOURCE, "plone"), "nats": podman_image(NATS_SOURCE, "nats")}
    overrides = [override(images["plone"], "txzserver/plone"), override(images["nats"], "txzserver/nats")]
    objects = render_variant(tmp_path / "overlay", ["components/zeo", "components/backup-zeo",
                                                    "components/nats", "components/images"], images=overrides)
    password = secrets.token_urlsafe(12)
    nats_password = secrets.token_hex(16)
    values = {("txzserver-admin", "password"): password, ("txzserver-nats", "password"): nats_password}
    # own hostPorts per pod (podman 4.3 publishes a containerPort without hostPort on the same
    # host port: two pods would collide)
    ports = {pod: {"http": free_port(), "health": free_port(), "metrics": free_port()} for pod in INSTANCES}
    ports.update({node: {"client": free_port(), "cluster": free_port(), "monitor": free_port()}
                  for node in NODES})
    # a name of this run's own: a machine that keeps podman's state between runs may hold
    # another run's volumes (a pid comes again on a machine booted the same way)
    network = f"txzkube{secrets.token_hex(4)}"
    nats = find(objects, "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == len(NODES)
    claims = {node: f"data-{node}-{network}" for node in NODES}
    # ZEO's data and the backups outlive their pods (the backup round trip)
    volumes = {"data-zeo-0": f"data-zeo-{network}", "txzserver-backups": f"backups-{network}"}
    nats_pods = {node: as_pod(nats, node, objects, values, ports[node],
                              dns_name=f"{node}.{nats['spec']['serviceName']}",
                              claims={"data": claims[node]}, liveness=False) for node in NODES}
    instance = find(objects, "Deployment", "instance")
    pods = [
        as_pod(find(objects, "StatefulSet", "zeo"), "zeo", objects, values,
               claims={"data": volumes["data-zeo-0"]}),
        *nats_pods.values(),
        *(as_pod(instance, pod, objects, values, ports[pod]) for pod in INSTANCES),
        as_pod(find(objects, "Job", "create-site"), "create-site", objects, values),
    ]
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(yaml.safe_dump_all(mounted_config_maps(pods, objects) + pods))
    # one manifest per NATS node: what the StatefulSet controller makes again after a deletion
    node_manifests = {}
    for node, pod in nats_pods.items():
        node_manifests[node] = tmp_path / f"{node}.yaml"
        node_manifests[node].write_text(yaml.safe_dump_all(mounted_config_maps([pod], objects) + [pod]))
    artifacts = pathlib.Path(os.environ.get("KUBE_SMOKE_LOGS", tmp_path / "logs"))
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "summary.txt").write_text("")
    remove_leftover_pods(pods)
    run("podman", "network", "create", network)
    try:
        run("podman", "kube", "play", "--network", network, str(manifest), timeout=180)
        yield {"objects": objects, "ports": ports, "password": password, "images": images,
               "nats_password": nats_password, "values": values, "volumes": volumes,
               "overrides": overrides, "tmp": tmp_path,
               "started": started, "manifest": manifest, "logs": artifacts, "network": network,
               "node_manifests": node_manifests}
    finally:
        for container in RUN_CONTAINERS + (JOB_CONTAINER,):
            (artifacts / f"{container}.log").write_text(logs(container))
        run("podman", "kube", "down", str(manifest), check=False, timeout=180)
        for claim in (*claims.values(), *volumes.values()):
            run("podman", "volume", "rm", "-f", claim, check=False)
        # the pods' ConfigMap copies: podman keeps a ConfigMap's volume after `kube down`; not
        # forced (-f would remove a container still using one)
        copies = run("podman", "volume", "ls", "--format", "{{.Name}}", check=False).stdout.split()
        for copy in (name for name in copies if COPY_FOR in name):
            run("podman", "volume", "rm", copy, check=False)
        run("podman", "network", "rm", "-f", network, check=False)


def remove_leftover_pods(pods):
    """Pods of ours that an interrupted earlier run left (a killed run never tears down): their
    names would make `kube play` fail, their hostPorts and NATS routes would mix with ours."""
    for pod in pods:
        name = pod["metadata"]["name"]
        if run("podman", "pod", "exists", name, check=False).returncode == 0:
            print(f"removing the pod {name} an earlier run left")
            run("podman", "pod", "rm", "-f", name, timeout=120)


def telling_lines(log):
    """A NATS node's log lines that say how it joined (its cluster, routes, errors), then its
    last lines, without the once-a-second health check failures in between."""
    lines = [line for line in log.splitlines() if "Healthcheck failed" not in line]
    joining = [line for line in lines if any(word in line for word in ("Cluster", "oute", "[ERR]", "leader"))]
    return [*joining[:12], "...", *lines[-5:]]


def nats_diagnosis(stack):
    """What each NATS node shows when the cluster is not as expected: the container's state and
    restarts, its monitor's answer on the hostPort (health, route peers, JetStream meta group)
    and its last log lines; for the failure message of a wait."""
    lines = []
    for node in NODES:
        container = nats_container(node)
        state = run("podman", "inspect", "--format", "{{.State.Status}} restarts={{.RestartCount}}",
                    container, check=False)
        health = http_get(monitor(stack, node, "/healthz"), timeout=3)
        routes = (get_json(monitor(stack, node, "/routez"), timeout=3) or {}).get("routes", ())
        peers = sorted({str(route.get("remote_name")) for route in routes})
        meta = (get_json(monitor(stack, node, "/jsz"), timeout=3) or {}).get("meta_cluster")
        lines += [f"--- {node}: {(state.stdout or state.stderr).strip()}; /healthz {health}",
                  f"    route peers {peers}; meta {meta}",
                  *(f"    | {line}" for line in telling_lines(logs(container)))]
    return "\n".join(lines)


def startup_budget(objects, kind="Deployment", name="instance"):
    """Seconds the rendered startupProbe allows a start (the kubelet's wait)."""
    probe = pod_template(find(objects, kind, name))["spec"]["containers"][0]["startupProbe"]
    return probe["periodSeconds"] * probe["failureThreshold"]


def summary(stack, line):
    """A line of the run's summary (printed, and kept in KUBE_SMOKE_LOGS/summary.txt)."""
    print(line)
    with open(stack["logs"] / "summary.txt", "a") as out:
        out.write(line + "\n")


def api(stack, pod, method, path, body=None, timeout=30):
    return rest(stack["ports"][pod]["http"], stack["password"], method, path, body, timeout)


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


def monitor(stack, node, path):
    return f"http://127.0.0.1:{stack['ports'][node]['monitor']}{path}"


def node_in_cluster(stack, node):
    """The node answers its rendered readiness path, routes to the two others, and knows
    JetStream's leader among the three."""
    container = pod_template(find(stack["objects"], "StatefulSet", "nats"))["spec"]["containers"][0]
    if http_get(monitor(stack, node, container["readinessProbe"]["httpGet"]["path"]), timeout=3)[0] != 200:
        return False
    # routes are pooled (several connections per peer): count the peers
    routes = (get_json(monitor(stack, node, "/routez")) or {}).get("routes", ())
    peers = {route.get("remote_name") for route in routes}
    meta = (get_json(monitor(stack, node, "/jsz")) or {}).get("meta_cluster", {})
    return (peers == {other for other in NODES if other != node} and meta.get("leader")
            and meta.get("cluster_size") == len(NODES))


def in_instance(stack, pod, *args, timeout=600, script=CONTENT_SCRIPT):
    """smoke_content.py (or ``script``) run inside an instance's container
    (`docker-entrypoint.sh run`): its RESULT line as JSON."""
    script = script.read_text()
    command = 'cat > /tmp/smoke.py && exec /app/bin/docker-entrypoint.sh run /tmp/smoke.py "$@"'
    result = run("podman", "exec", "-i", f"{pod}-instance", "sh", "-c", command, "sh", *args,
                 stdin=script, timeout=timeout, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (result.stdout[-2000:], result.stderr[-3000:])
    return json.loads(lines[-1].removeprefix("RESULT "))


def exited(container):
    state = json.loads(run("podman", "inspect", container).stdout)[0]["State"]
    return (state["Status"], state["ExitCode"]) if state["Status"] == "exited" else None


def run_once(stack, workload, name):
    """``workload``'s pod (a CronJob's or a Job's) played on the stack's network with its claims
    on the stack's podman volumes, until its container exits: (exit code, log). The pod is
    removed afterwards."""
    pod = as_pod(workload, name, stack["objects"], stack["values"])
    for volume in pod["spec"]["volumes"]:
        claim = volume.get("persistentVolumeClaim")
        if claim:
            claim["claimName"] = stack["volumes"][claim["claimName"]]
    (container,) = pod["spec"]["containers"]
    manifest = stack["tmp"] / f"{name}.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    podman_name = f"{name}-{container['name']}"
    run("podman", "kube", "play", "--network", stack["network"], str(manifest), timeout=180)
    try:
        def finished():
            state = json.loads(run("podman", "inspect", podman_name).stdout)[0]["State"]
            if state["Status"] == "exited":
                return state
            if restart_count(podman_name):  # restartPolicy OnFailure: it failed and runs again
                return {"ExitCode": "failed, restarted"}
            return None
        state = wait_for(finished, 600, f"{podman_name} to exit", interval=1)
        log = logs(podman_name)
        (stack["logs"] / f"{podman_name}.log").write_text(log)
        return state["ExitCode"], log
    finally:
        run("podman", "kube", "down", str(manifest), check=False, timeout=180)
