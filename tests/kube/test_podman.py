"""The Kubernetes manifests on a real container runtime: `podman kube play` (`make k8s-smoke`).

What runs is rendered from config/kubernetes as an operator composes it: the base with ZEO
(components/zeo, the dev overlay's storage) and the production bus, components/nats (a 3-node
NATS JetStream cluster), images pointed at the locally built ones (an `images:` override; the
tag is the image id, never `latest`). ZEO, the three NATS nodes, two instances (the
Deployment's template twice: pods instance-1 and instance-2) and the site-creation Job run as
pods derived from the rendered workloads (tests/kube/pods.py says what is filled in for podman)
on a podman network of their own. Each instance is reached on 127.0.0.1 through hostPorts of
its own for 8080 (http), 8081 (health) and 8082 (metrics), each NATS node for 4222 and 8222.

Checked: ZEO passes its rendered readiness probe, every NATS node its readiness path (/healthz,
asked from the host as the kubelet does) with routes to the two others and one JetStream
leader for the three, both instances' readiness endpoints say ready; the Job makes the site and
both instances serve it; a document made through instance-1 is read through instance-2, whose
WebSocket client receives its `created` event (over NATS); every container runs non-root on a
read-only root with no capability (instances and ZEO uid 500, NATS uid 520).
The upgrade Job: a step made pending in the site (txzserver:default back at 1000) and the
upgrade lock held (tests/kube/smoke_upgrade.py); two pods of the rendered upgrade Job started
at once both wait; once the lock is released, one runs the step and commits, the other waits
for it, finds nothing pending and exits 0; one upgrade committed, nothing pending after.
The burst: 1,000 workflow transitions in 10 commits alternating between the instances, one NATS
node deleted after the third (its pod removed, then made again from its manifest on its own
volume, as the StatefulSet controller does): both instances stay ready and serve pages (polled
throughout: no failure), a WebSocket client on each instance gets every one of the 1,000
events exactly once and no gap, the event stream has 3 replicas; a `txzserver listen
--durable` consumer made before the burst and stopped during it gets all 1,000 once when
started again.
The crash: 50 tasks queued (backend nats), then instance-2's main process SIGKILLed from the
host during page loads on both instances (podman kill would mark it stopped by the user, never
restarted): no container restarted before that kill (the instances and the Job start together
on the empty database: Zope's first start retries its collisions), instance-2 is restarted by the
pod's restart policy (Always, as rendered) and serves again, instance-1 fails no page load, and
the ZODB holds exactly one committed run of each of the 50 tasks (its transaction notes) and
the 50 ids in the done ledger. Waits for a start are the rendered startupProbe's budget.
The backup round trip (components/backup-zeo, config/kubernetes/restore/zeo): a Document made,
the backup CronJob's pod run as rendered (ZEO's volume read-only, the backup volume), a second
Document made and the first deleted; the restore Job's pod refused while ZEO runs (Data.fs
locked), then, with ZEO and the instances stopped, it restores; ZEO and the instances started
again serve the first Document and not the second. ZEO's data and the backups are podman named
volumes, as their PersistentVolumeClaims.
podman has no NetworkPolicies: tests/kube/test_manifests.py evaluates them.
"""

import collections
import json
import os
import pathlib
import secrets
import subprocess
import time

import pytest
import yaml

from tests.kube.manifests import find, pod_template, render_variant
from tests.kube.pods import as_pod, mounted_config_maps
from tests.kube.podman import (
    DurableListener, Poller, free_port, get_json, http_get, kill_main_process, logs, not_crash_looping,
    podman_image, rendered_probe_passes, rest, restart_count, run, wait_for)
from tests.support.wsclient import Collector, basic

pytestmark = [pytest.mark.timeout(1500)]

# the locally built images (`make images`); KUBE_SMOKE_IMAGE / KUBE_SMOKE_NATS_IMAGE pick others
PLONE_SOURCE = os.environ.get("KUBE_SMOKE_IMAGE", "txzserver/plone:latest")
NATS_SOURCE = os.environ.get("KUBE_SMOKE_NATS_IMAGE", "txzserver/nats:latest")
INSTANCES = ("instance-1", "instance-2")
NODES = ("nats-0", "nats-1", "nats-2")
JOB_CONTAINER = "create-site-create-site"
# logged by txzserver.zope.firststart when a first start collided with another process's
FIRST_START_RETRY = "first start: ConflictError on"
# the burst: FOLDERS commits of PER_FOLDER transitions; the node deleted after DELETE_AFTER
FOLDERS, PER_FOLDER, DELETE_AFTER, TASKS = 10, 100, 3, 50
BURST = FOLDERS * PER_FOLDER
DURABLE = "smoke-builder"
CONTENT_SCRIPT = pathlib.Path(__file__).with_name("smoke_content.py")
UPGRADE_SCRIPT = pathlib.Path(__file__).with_name("smoke_upgrade.py")
UPGRADE_STEP = "txzserver:default 1000 -> 1001: Add the registry record txzserver.canonical_url"
UPGRADE_PODS = ("upgrade-1", "upgrade-2")


def nats_container(node):
    return f"{node}.nats-cluster-nats"


RUN_CONTAINERS = ("zeo-zeo", *(nats_container(node) for node in NODES),
                  *(f"{pod}-instance" for pod in INSTANCES))


@pytest.fixture(scope="module", autouse=True)
def podman_installed():
    if subprocess.run(["sh", "-c", "command -v podman"], capture_output=True).returncode:
        pytest.fail("needs podman: `make k8s-smoke` installs it (images/podman-host.sh)")


def override(reference, name):
    image, _, tag = reference.rpartition(":")
    return {"name": name, "newName": image, "newTag": tag}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
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
        run("podman", "network", "rm", "-f", network, check=False)


def remove_leftover_pods(pods):
    """Pods of ours that an interrupted earlier run left (a killed run never tears down): their
    names would make `kube play` fail, their hostPorts and NATS routes would mix with ours."""
    for pod in pods:
        name = pod["metadata"]["name"]
        if run("podman", "pod", "exists", name, check=False).returncode == 0:
            print(f"removing the pod {name} an earlier run left")
            run("podman", "pod", "rm", "-f", name, timeout=120)


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
                  *(f"    | {line}" for line in logs(container).splitlines()[-15:])]
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


def test_database_nats_and_two_instances_reach_ready(stack):
    spec = pod_template(find(stack["objects"], "StatefulSet", "zeo"))["spec"]
    (container,) = spec["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    probe = container["readinessProbe"]
    wait_for(lambda: rendered_probe_passes("zeo-zeo", probe, ports), 90, f"zeo's readiness probe ({probe})")
    for node in NODES:
        wait_for(lambda: not_crash_looping(nats_container(node)) or node_in_cluster(stack, node),
                 startup_budget(stack["objects"], "StatefulSet", "nats"),
                 f"{node}: /healthz, 2 routes and a JetStream leader on its monitor hostPort",
                 explain=lambda: nats_diagnosis(stack))
    for pod in INSTANCES:
        wait_for(lambda: not_crash_looping(f"{pod}-instance") or ready(stack, pod),
                 startup_budget(stack["objects"]), f"{pod}: GET /healthz/ready on its health hostPort")
    leader = get_json(monitor(stack, "nats-0", "/jsz"))["meta_cluster"]["leader"]
    summary(stack, f"zeo, {len(NODES)} NATS nodes (JetStream leader {leader}), {' and '.join(INSTANCES)} "
                   f"ready {time.monotonic() - stack['started']:.1f} s after the start")


def test_the_site_job_makes_the_site_and_both_instances_serve_it(stack):
    for pod in INSTANCES:
        status, body = wait_for(lambda: site_served(stack, pod), startup_budget(stack["objects"]),
                                f"GET /Plone through {pod}'s hostPort", interval=2)
        assert "Plone" in body
    state = json.loads(run("podman", "inspect", JOB_CONTAINER).stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    log = logs(JOB_CONTAINER)
    assert "site /Plone created" in log or "site /Plone exists already" in log
    status, _ = http_get(f"http://127.0.0.1:{stack['ports']['instance-1']['http']}/")
    assert status in (200, 401)
    retries = {container: logs(container).count(FIRST_START_RETRY)
               for container in (*(f"{pod}-instance" for pod in INSTANCES), JOB_CONTAINER)}
    summary(stack, f"both instances served /Plone {time.monotonic() - stack['started']:.1f} s "
                   f"after the start; first-start collisions retried: {retries}")


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
        status, _ = http_get(f"http://127.0.0.1:{stack['ports'][pod]['http']}/Plone/@@overview-controlpanel",
                             timeout=20, headers=basic("admin", stack["password"]))
        assert status == 200


def test_a_document_made_through_one_instance_is_read_through_the_other(stack):
    """Created on instance-1 (plone.restapi), read on instance-2, whose WebSocket client
    receives the `created` event: the event crossed over NATS."""
    port = stack["ports"]["instance-2"]["http"]
    watcher = Collector(f"ws://127.0.0.1:{port}/Plone/ws", basic("admin", stack["password"]),
                        name="instance-2").start_and_wait(30)
    try:
        name = f"kube-{secrets.token_hex(4)}"
        status, created = api(stack, "instance-1", "POST", "/Plone",
                              {"@type": "Document", "id": name, "title": f"Made on instance-1 {name}"})
        assert status == 201, (status, created)

        def read_on_instance_2():
            status, document = api(stack, "instance-2", "GET", f"/Plone/{name}")
            return document if status == 200 else None

        document = wait_for(read_on_instance_2, 15, f"GET /Plone/{name} through instance-2", interval=0.5)
        assert document["title"] == f"Made on instance-1 {name}" and document["UID"] == created["UID"]
        try:
            (event, *_) = watcher.wait_for_event(timeout=20, type="created", path=f"/Plone/{name}")
        except AssertionError as missing:
            buses = "\n".join(f"--- {pod}: " + "\n".join(
                line for line in logs(f"{pod}-instance").splitlines() if "nats" in line.lower())[-1500:]
                for pod in INSTANCES)
            raise AssertionError(f"{missing}\n{buses}\n{nats_diagnosis(stack)}") from None
        summary(stack, f"document /Plone/{name} made on instance-1, read on instance-2; "
                       f"instance-2's WebSocket client got {event['type']} {event['path']} over NATS")
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
    assert lines[:2] == ["520" if ".nats-cluster" in container else "500", "0"], out
    assert "Read-only file system" in lines[2], out
    status = dict(line.split(":\t") for line in lines[3:])
    assert status == {"CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}, out


def test_data_and_tmp_are_writable(stack):
    """The emptyDirs (/data, /tmp) take what the read-only root refuses."""
    out = run("podman", "exec", "instance-1-instance", "sh", "-c",
              "touch /data/tmp/probe /tmp/probe && echo ok").stdout
    assert out.strip() == "ok"


def test_health_and_metrics_endpoints(stack):
    for pod in INSTANCES:
        base = f"http://127.0.0.1:{stack['ports'][pod]['health']}"
        for path in ("/healthz/startup", "/healthz/live", "/healthz/ready"):
            wait_for(lambda: http_get(base + path)[0] == 200, 60, f"GET {path} on {pod}")
        url = f"http://127.0.0.1:{stack['ports'][pod]['metrics']}/metrics"
        status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(http_get(url)),
                                60, f"GET /metrics on {pod}")
        assert "txzserver_http_connections_max" in body and "txzserver_publisher_threads" in body


# --- the upgrade Job -----------------------------------------------------------------------------

def exited(container):
    state = json.loads(run("podman", "inspect", container).stdout)[0]["State"]
    return (state["Status"], state["ExitCode"]) if state["Status"] == "exited" else None


def test_two_upgrade_jobs_at_once_run_the_pending_step_once(stack):
    """The rendered upgrade Job's pod twice at once (its retry overlapping its first pod, or the
    Jobs of two image versions) on a step made pending in the site, both started while the lock
    is held (smoke_upgrade.py): both wait; once it is released one runs the step and commits, the
    other waits for that run, finds nothing pending and exits 0 too; one upgrade committed."""
    held = in_instance(stack, "instance-1", "hold", script=UPGRADE_SCRIPT)
    assert held["pending"] == [UPGRADE_STEP] and held["version"] == "1000", held
    objects = stack["objects"]
    pods = [as_pod(find(objects, "Job", "upgrade"), name, objects, stack["values"]) for name in UPGRADE_PODS]
    manifest = stack["tmp"] / "upgrade.yaml"
    manifest.write_text(yaml.safe_dump_all(mounted_config_maps(pods, objects) + pods))
    containers = [f"{pod}-upgrade" for pod in UPGRADE_PODS]
    started = time.monotonic()
    run("podman", "kube", "play", "--network", stack["network"], str(manifest), timeout=180)
    try:
        for container in containers:
            wait_for(lambda: "held by the smoke test" in logs(container), startup_budget(objects),
                     f"{container} waiting for the upgrade lock")
        in_instance(stack, "instance-1", "release", script=UPGRADE_SCRIPT)
        for container in containers:
            assert wait_for(lambda: exited(container), startup_budget(objects),
                            f"{container} to finish") == ("exited", 0), logs(container)
        outputs = {container: logs(container) for container in containers}
    finally:
        for container in containers:
            (stack["logs"] / f"{container}.log").write_text(logs(container))
        run("podman", "kube", "down", str(manifest), check=False, timeout=180)
    ran = [container for container, output in outputs.items() if f"running {UPGRADE_STEP}" in output]
    assert len(ran) == 1, outputs
    (other,) = set(containers) - set(ran)
    assert "nothing pending (another run upgraded it while this one waited)" in outputs[other]
    assert "site /Plone: 1 upgrade step(s) run and committed" in outputs[ran[0]]
    done = in_instance(stack, "instance-1", "done", script=UPGRADE_SCRIPT)
    assert done["pending"] == [] and done["version"] == "1001", done
    assert len(done["upgrades"]) == 1 and "1 step(s)" in done["upgrades"][0], done
    summary(stack, f"two upgrade Jobs at once: {ran[0]} ran the step, {other} waited and found "
                   f"nothing pending, {time.monotonic() - started:.1f} s from their start")


# --- the burst with a NATS node deleted, the durable listener ---------------------------------

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


def durable_listener(stack):
    """`txzserver listen --durable` from this host on the NATS nodes' client hostPorts (a
    static-site builder elsewhere), printing the burst folder's events."""
    servers = [f"nats://txzserver:{stack['nats_password']}@127.0.0.1:{stack['ports'][node]['client']}"
               for node in NODES]
    listener = DurableListener(DURABLE, servers, stack["logs"] / "listen-durable.log",
                               "--path", "/Plone/burst", "--all-events")
    listener.start()
    return listener


def consumer_exists(stack, name):
    details = get_json(monitor(stack, "nats-0", "/jsz?accounts=true&streams=true&consumers=true")) or {}
    return any(consumer["name"] == name for account in details.get("account_details", ())
               for stream in account.get("stream_detail", ())
               for consumer in stream.get("consumer_detail") or ())


def delete_and_recreate(stack, node):
    """The node's pod deleted (`podman pod rm -f`: its containers stopped, then removed), then
    made again from its own manifest on the same volume, as the StatefulSet controller does."""
    run("podman", "pod", "rm", "-f", f"{node}.nats-cluster", timeout=120)
    deleted = time.monotonic()
    run("podman", "kube", "play", "--network", stack["network"], str(stack["node_manifests"][node]),
        timeout=180)
    return deleted


def burst_paths():
    return {f"/Plone/burst/b{folder}/doc-{index}" for folder in range(FOLDERS) for index in range(PER_FOLDER)}


def transitions(collector, paths):
    return collections.Counter(event["path"] for event in collector.events(type="transition")
                               if event["path"] in paths)


def test_burst_with_a_nats_node_deleted(stack):
    made = in_instance(stack, "instance-1", "make", str(FOLDERS), str(PER_FOLDER), str(TASKS))
    assert made == {"burst": BURST, "queued": TASKS}, made
    collectors = {pod: Collector(f"ws://127.0.0.1:{stack['ports'][pod]['http']}/Plone/ws",
                                 basic("admin", stack["password"]), name=pod).start_and_wait(40)
                  for pod in INSTANCES}
    pollers = [Poller(f"http://127.0.0.1:{stack['ports'][pod][port]}{path}", interval=0.5,
                      name=f"{pod}{path}")
               for pod in INSTANCES for port, path in (("health", "/healthz/ready"), ("http", "/Plone"))]
    for poller in pollers:
        poller.start()
    paths, deleted, back = burst_paths(), None, None
    # the builder's durable consumer exists, then the builder is stopped for the whole burst
    builder = durable_listener(stack)
    wait_for(lambda: consumer_exists(stack, DURABLE), 120, f"the durable consumer {DURABLE}",
             explain=lambda: "--- txzserver listen --durable:\n"
             f"{(stack['logs'] / 'listen-durable.log').read_text()[-2000:]}\n{nats_diagnosis(stack)}")
    assert builder.stop() == 0
    try:
        for folder in range(FOLDERS):
            pod = INSTANCES[folder % 2]
            status, answer = api(stack, pod, "POST", f"/Plone/burst/b{folder}/@workflow/publish",
                                 {"include_children": True}, timeout=300)
            assert status == 200, (pod, status, str(answer)[:500])
            if folder + 1 == DELETE_AFTER:
                deleted = delete_and_recreate(stack, "nats-1")
        try:
            wait_for(lambda: all(len(transitions(c, paths)) == BURST for c in collectors.values()), 300,
                     f"all {BURST} transitions at both instances' WebSocket clients", interval=1)
        except AssertionError as exc:
            received = {pod: len(transitions(c, paths)) for pod, c in collectors.items()}
            raise AssertionError(f"{exc}; distinct transitions received: {received}") from None
        wait_for(lambda: node_in_cluster(stack, "nats-1"),
                 startup_budget(stack["objects"], "StatefulSet", "nats"), "nats-1 back in the cluster")
        back = time.monotonic()
    finally:
        for poller in pollers:
            poller.stop()
        for collector in collectors.values():
            collector.stop()
    for pod, collector in collectors.items():
        counts = transitions(collector, paths)
        assert set(counts) == paths and set(counts.values()) == {1}, (pod, counts.most_common(3))
        assert not [m for m in collector.messages if m.get("type") == "gap"], pod
    for poller in pollers:
        assert len(poller.results) > 5 and not poller.failed(), (poller.name, poller.failed()[:5])
    # the builder started again: every one of the burst's events, once
    builder = durable_listener(stack)
    try:
        wait_for(lambda: len({e.get("path") for e in builder.events if e.get("type") == "transition"} & paths)
                 == BURST, 300, f"the {BURST} transitions at the restarted durable listener", interval=1)
    finally:
        builder.stop()
    replayed = collections.Counter(e["path"] for e in builder.events if e.get("type") == "transition"
                                   and e.get("path") in paths)
    assert set(replayed.values()) == {1}, replayed.most_common(3)
    assert not [e for e in builder.events if e.get("type") == "gap"]
    streams = get_json(monitor(stack, "nats-0", "/jsz?accounts=true&streams=true&config=true"))
    replicas = {stream["name"]: stream["config"]["num_replicas"]
                for account in streams["account_details"] for stream in account.get("stream_detail", ())}
    assert replicas.get("TXZSERVER_EVENTS") == 3, replicas
    summary(stack, f"burst: {BURST} transitions in {FOLDERS} commits on both instances, nats-1 deleted "
                   f"after {DELETE_AFTER} and back in the cluster {back - deleted:.1f} s later: every event "
                   f"once at each instance's WebSocket client, no gap; readiness and pages: "
                   f"{sum(len(p.results) for p in pollers)} polls, none failed; stream replicas {replicas}; "
                   f"`listen --durable` stopped for the burst, then started: {len(replayed)} once each")


# --- 50 queued tasks, an instance killed -9 during page loads -----------------------------------

TASK_DONE = "@@txzserver-reindex (queue default) done"
TASK_STREAM = "TXZSERVER_TASKS_default"


def task_stream(stack):
    """The task queue's stream: its state, and its consumer's (the instances share one)."""
    details = get_json(monitor(stack, "nats-0", "/jsz?accounts=true&streams=true&consumers=true"))
    for account in details["account_details"]:
        for stream in account.get("stream_detail", ()):
            if stream["name"] == TASK_STREAM:
                return {**stream["state"], "consumers": stream.get("consumer_detail") or ()}
    raise AssertionError(f"no stream {TASK_STREAM}")


def task_consumer(stack):
    (consumer,) = task_stream(stack)["consumers"]
    return consumer


def test_an_instance_killed_with_queued_tasks_during_page_loads(stack):
    """50 tasks queued through instance-1 and in the NATS work queue; instance-2's main process
    SIGKILLed as soon as it has run one of them, while both instances are loaded with page
    loads. The restart is the pod's restart policy as rendered: the Deployment leaves it unset,
    which is Always in Kubernetes and in `podman kube play`. instance-1 goes on serving
    meanwhile; every task is committed exactly once (those instance-2 held come again after
    the queue's ack-wait)."""
    victim = "instance-2-instance"
    policy = run("podman", "inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", victim).stdout.strip()
    rendered = pod_template(find(stack["objects"], "Deployment", "instance"))["spec"]
    assert rendered.get("restartPolicy", "Always") == "Always" and policy == "always", policy
    # nothing restarted before the kill: the instances and the Job starting together on the
    # empty database retry Zope's first start instead of exiting (txzserver.zope.firststart),
    # and no probe took a slow start for a dead one (nats-1 is a new container since the burst)
    earlier = {container: restart_count(container) for container in RUN_CONTAINERS + (JOB_CONTAINER,)}
    assert earlier == dict.fromkeys(earlier, 0), (earlier, {
        container: logs(container)[-2000:] for container, count in earlier.items() if count})
    loads = {pod: Poller(f"http://127.0.0.1:{stack['ports'][pod]['http']}/Plone", name=pod)
             for pod in INSTANCES}
    for thread in loads.values():
        thread.start()
    try:
        wait_for(lambda: all(len(t.results) >= 5 and not t.failed() for t in loads.values()), 30,
                 "page loads answering on both instances before the kill", interval=0.2)
        queued_before = task_stream(stack)["last_seq"]
        status, body = http_get(f"http://127.0.0.1:{stack['ports']['instance-1']['http']}"
                                "/Plone/queued/@@txzserver-reindex-folder", timeout=60,
                                headers=basic("admin", stack["password"]))
        assert status == 200 and f"queued {TASKS} reindex task(s)" in body, (status, body[:300])
        wait_for(lambda: task_stream(stack)["last_seq"] - queued_before == TASKS, 60,
                 f"the {TASKS} tasks in the NATS work queue")
        wait_for(lambda: logs(victim).count(TASK_DONE), 120, "instance-2 running the tasks", interval=0.1)
        in_flight = task_consumer(stack)
        killed = time.monotonic()
        kill_main_process(victim)
        wait_for(lambda: loads["instance-2"].failed(), 15, "a failed page load after the kill", interval=0.1)
        wait_for(lambda: restart_count(victim) > 0, 30, f"{victim} restarted by podman", interval=0.5)
        wait_for(lambda: ready(stack, "instance-2") and site_served(stack, "instance-2"),
                 startup_budget(stack["objects"]), "instance-2 ready and serving /Plone again", interval=0.5)
        back = time.monotonic()
        wait_for(lambda: any(t > back and status == 200 for t, status in loads["instance-2"].results), 15,
                 "a page load answered by the restarted instance-2", interval=0.2)
    finally:
        for thread in loads.values():
            thread.stop()
    expected = {f"/Plone/queued/item-{index}/txzserver-reindex/__call__" for index in range(TASKS)}
    # a task taken by the killed instance comes again after the queue's ack-wait (30 s)
    record = wait_for(lambda: (lambda r: r if set(r["commits"]) >= expected else None)(
        in_instance(stack, "instance-1", "commits")), 300, f"{TASKS} task runs committed", interval=5)
    committed = {path: count for path, count in record["commits"].items() if path in expected}
    assert set(committed) == expected and set(committed.values()) == {1}, committed
    assert len(record["ledger"]) >= TASKS
    survivor, victim_loads = loads["instance-1"], loads["instance-2"]
    failed = victim_loads.failed()
    after = [t for t, _ in failed if t > killed]
    assert failed and min(after) >= killed, failed
    ran = {pod: logs(f"{pod}-instance").count(TASK_DONE) for pod in INSTANCES}
    summary(stack, f"instance-2 killed -9 once it had run one of {TASKS} queued tasks, during page "
                   f"loads: back (ready, /Plone 200) {back - killed:.1f} s later, restarted by its "
                   f"restart policy Always (restarts before the kill: {sum(earlier.values())} of "
                   f"{len(earlier)} containers); "
                   f"instance-2: {len(failed)} of {len(victim_loads.results)} page loads failed; instance-1: "
                   f"{len(survivor.failed())} of {len(survivor.results)} failed; tasks: each of {TASKS} "
                   f"committed once (at the kill: {in_flight.get('num_ack_pending')} delivered and "
                   f"unacknowledged, {in_flight.get('num_pending')} waiting; runs logged done per "
                   f"instance: {ran})")
    assert not survivor.failed(), survivor.failed()


# --- backup, delete, restore, read again ---------------------------------------------------------

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


def document_status(stack, pod, name):
    return api(stack, pod, "GET", f"/Plone/{name}")[0]


def test_backup_delete_restore_read_again(stack):
    """The round trip an operator runs (docs/operators/backups.md): the CronJob's pod backs up the
    live ZEO server; the restore Job refuses while ZEO holds Data.fs, and restores once ZEO and
    the instances are stopped; started again, they serve the backup's state."""
    kept, later = f"kept-{secrets.token_hex(4)}", f"later-{secrets.token_hex(4)}"
    status, _ = api(stack, "instance-1", "POST", "/Plone", {"@type": "Document", "id": kept,
                                                            "title": "Kept through a restore"})
    assert status == 201
    started = time.monotonic()
    code, log = run_once(stack, find(stack["objects"], "CronJob", "backup-zeo"), "backup-zeo")
    assert code == 0 and "wrote full backup" in log and "files copied" in log, log[-3000:]
    backed_up = time.monotonic() - started
    status, _ = api(stack, "instance-1", "POST", "/Plone", {"@type": "Document", "id": later,
                                                            "title": "Made after the backup"})
    assert status == 201
    assert api(stack, "instance-2", "DELETE", f"/Plone/{kept}")[0] == 204
    wait_for(lambda: document_status(stack, "instance-1", kept) == 404, 15,
             f"/Plone/{kept} gone on instance-1", interval=0.5)

    restore_objects = render_variant(stack["tmp"] / "restore", [], resources=("restore/zeo",),
                                     images=stack["overrides"])
    restore = find(restore_objects, "Job", "restore-zeo")
    code, log = run_once(stack, restore, "restore-zeo-refused")
    assert code == 1 and "is in use (locked)" in log, log[-3000:]

    pods = (*INSTANCES, "zeo")
    run("podman", "pod", "stop", *pods, timeout=180)
    started = time.monotonic()
    code, log = run_once(stack, restore, "restore-zeo")
    assert code == 0 and "restored /data/filestorage/Data.fs" in log, log[-3000:]
    restored = time.monotonic() - started
    run("podman", "pod", "start", *pods, timeout=180)
    for pod in INSTANCES:
        wait_for(lambda: ready(stack, pod) and site_served(stack, pod), startup_budget(stack["objects"]),
                 f"{pod} serving /Plone after the restore")
        document = wait_for(lambda: (lambda r: r[1] if r[0] == 200 else None)(
            api(stack, pod, "GET", f"/Plone/{kept}")), 60, f"/Plone/{kept} through {pod}")
        assert document["title"] == "Kept through a restore"
        assert document_status(stack, pod, later) == 404
    summary(stack, f"backup: the CronJob's pod backed up the live ZEO in {backed_up:.1f} s; the restore "
                   f"Job refused while ZEO ran (Data.fs locked), restored in {restored:.1f} s with ZEO and "
                   f"the instances stopped; both serve /Plone/{kept} again and not /Plone/{later}")
