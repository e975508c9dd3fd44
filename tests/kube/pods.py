"""Pods for `podman kube play`, derived from the rendered workloads (never written by hand).

podman (Debian's 4.3) runs Pods and Deployments but has no StatefulSets, Jobs, Services,
ConfigMap/Secret references across objects or NetworkPolicies. So each workload's pod template
is taken as rendered, with only what podman lacks filled in:
  - the pod is named after the workload's Service (zeo), or for a StatefulSet's pod after its
    stable name on the headless Service (nats-0.nats-cluster), and the pods share a podman
    network whose DNS answers pod names: `zeo:8100` and `nats://nats-0.nats-cluster:4222`
    resolve as the Services make them resolve in a cluster;
  - env from ConfigMaps and Secrets, and fieldRefs, are resolved into plain values (a
    StatefulSet pod's metadata.name is its Kubernetes name, nats-0);
  - a StatefulSet's volumeClaimTemplates become emptyDirs (the test's storage is throw-away),
    or, with ``claims``, podman named volumes that outlive the pod, as a PersistentVolumeClaim
    outlives a deleted StatefulSet pod;
  - ConfigMaps mounted as volumes go into the same YAML (``mounted_config_maps``), one copy per
    pod, and every emptyDir is named after its pod: podman 4.3 makes one named volume per
    ConfigMap or emptyDir *name*, shared by every pod that mounts that name, and writes a
    ConfigMap's files again each time a pod mounting it is played. Shared, two instances had
    one /data and every pod one /tmp, and a NATS node starting while the next pod was played
    read a half-written cluster.conf and ran alone (no routes, no JetStream meta leader); each
    pod has its own in Kubernetes;
  - chosen container ports get a hostPort on 127.0.0.1 (podman has no Service to reach them);
  - an httpGet livenessProbe becomes the same GET in the image's python3 (``podman_liveness``);
    an image without python3 (txzserver/nats) has its livenessProbe left out (``liveness``
    False): podman would run it with curl, which the image lacks, while the kubelet asks from
    outside, as the tests do through the monitor hostPort.
Everything else (securityContext, probes, resources, volumes, args) is kept as rendered.
"""

import copy

from tests.kube.manifests import containers, environment, pod_template

NAMESPACE = "txzserver"


def as_pod(workload, name, objects, secrets, host_ports=None, dns_name=None, claims=None,
           liveness=True):
    """A Pod manifest from a workload's template.

    ``secrets``: {(secret, key): value}; ``host_ports``: {container port name: host port};
    ``dns_name``: the podman pod's name when other pods reach it by another name than ``name``;
    ``claims``: {volumeClaimTemplate name: podman volume name}.
    """
    template = copy.deepcopy(pod_template(workload))
    spec = template["spec"]
    fields = {"metadata.name": name, "metadata.namespace": NAMESPACE}
    for container in containers(spec):
        env = environment(container, objects, secrets, fields)
        container.pop("envFrom", None)
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
        for port in container.get("ports", ()):
            if port.get("name") in (host_ports or {}):
                port["hostPort"] = host_ports[port["name"]]
                port["hostIP"] = "127.0.0.1"
        if liveness:
            podman_liveness(container)
        else:
            container.pop("livenessProbe", None)
    for claim in workload["spec"].get("volumeClaimTemplates", ()):
        claim_name = claim["metadata"]["name"]
        if claims and claim_name in claims:
            source = {"persistentVolumeClaim": {"claimName": claims[claim_name]}}
        else:
            source = {"emptyDir": {}}
        spec.setdefault("volumes", []).append({"name": claim_name, **source})
    own_volumes(spec, dns_name or name)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": dns_name or name, "labels": template["metadata"].get("labels", {})},
        "spec": spec,
    }


#: between a ConfigMap's name and the pod's in the name of the pod's copy of it
COPY_FOR = "--for-"


def own_volumes(spec, pod_name):
    """Each emptyDir volume and mounted ConfigMap of ``spec`` renamed after the pod (see the
    module's docstring), in place: the volume, the mounts, the ConfigMap reference."""
    renamed, slug = {}, pod_name.replace(".", "-")  # a volume's name is a DNS label: no dots
    for volume in spec.get("volumes", ()):
        if "emptyDir" in volume or "configMap" in volume:
            renamed[volume["name"]] = volume["name"] = f"{volume['name']}-{slug}"
        if "configMap" in volume:
            volume["configMap"]["name"] = f"{volume['configMap']['name']}{COPY_FOR}{slug}"
    for container in containers(spec):
        for mount in container.get("volumeMounts", ()):
            mount["name"] = renamed.get(mount["name"], mount["name"])


def mounted_config_maps(pods, objects):
    """The pods' own copies of the rendered ConfigMaps they mount as volumes (podman reads them
    from the same YAML)."""
    rendered = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "ConfigMap"}
    copies = sorted({volume["configMap"]["name"] for pod in pods for volume in pod["spec"].get("volumes", ())
                     if "configMap" in volume})
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": copy},
             "data": rendered[copy.split(COPY_FOR)[0]].get("data", {})} for copy in copies]


def podman_liveness(container):
    """The livenessProbe as podman 4.3 can run it, in place.

    podman makes a livenessProbe a healthcheck that restarts the container when it fails, but
    runs an httpGet probe with curl, which our images lack (every check would fail), and it
    ignores startupProbe, so the probe would count from the container's start. Here the same
    GET is made by python3 (the shell string podman builds: no space, quoted for sh), and the
    startupProbe's whole budget becomes its initialDelaySeconds (podman's start period), as the
    kubelet runs no liveness probe before the startup probe passed.
    """
    probe = container.get("livenessProbe")
    if not probe or "httpGet" not in probe:
        return
    get = probe.pop("httpGet")
    ports = {port["name"]: port["containerPort"] for port in container.get("ports", ())}
    url = f"http://127.0.0.1:{ports.get(get['port'], get['port'])}{get['path']}"
    timeout = probe.get("timeoutSeconds", 1)
    code = f'__import__("urllib.request").request.urlopen("{url}",timeout={timeout})'
    probe["exec"] = {"command": ["python3", "-c", f"'{code}'"]}
    startup = container.get("startupProbe")
    if startup:
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        probe["initialDelaySeconds"] = max(probe.get("initialDelaySeconds", 0), budget)
