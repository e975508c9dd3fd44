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
The stack is built once for the run (tests/kube/kubestack.py, the `stack` fixture of
tests/kube/conftest.py) and shared with test_podman_upgrade.py and test_podman_backup.py, which
`make k8s-smoke` runs after this module. podman has no NetworkPolicies:
tests/kube/test_manifests.py evaluates them.
"""

import collections
import json
import secrets
import time

import pytest

from tests.kube.kubestack import (
    INSTANCES, JOB_CONTAINER, NODES, RUN_CONTAINERS, api, in_instance, monitor, nats_container,
    nats_diagnosis, node_in_cluster, ready, site_served, startup_budget, summary)
from tests.kube.manifests import find, pod_template
from tests.kube.podman import (
    DurableListener, Poller, get_json, http_get, kill_main_process, logs, not_crash_looping,
    rendered_probe_passes, restart_count, run, wait_for)
from tests.support.wsclient import Collector, basic

pytestmark = [pytest.mark.timeout(1500)]

# logged by txzserver.zope.firststart when a first start collided with another process's
FIRST_START_RETRY = "first start: ConflictError on"
# the burst: FOLDERS commits of PER_FOLDER transitions; the node deleted after DELETE_AFTER
FOLDERS, PER_FOLDER, DELETE_AFTER, TASKS = 10, 100, 3, 50
BURST = FOLDERS * PER_FOLDER
DURABLE = "smoke-builder"


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


# --- the burst with a NATS node deleted, the durable listener ---------------------------------

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


