"""Pods for `podman kube play`, derived from the rendered workloads (never written by hand).

podman (Debian's 4.3) runs Pods and Deployments but has no StatefulSets, Jobs, Services,
ConfigMap/Secret references across objects or NetworkPolicies. So each workload's pod template
is taken as rendered, with only what podman lacks filled in:
  - the pod is named after the workload's Service (zeo, broker), and the pods share a podman
    network whose DNS answers pod names: `zeo:8100` and `tcp://broker:5559` resolve as the
    Services make them resolve in a cluster;
  - env from ConfigMaps and Secrets, and fieldRefs, are resolved into plain values;
  - a StatefulSet's volumeClaimTemplates become emptyDirs (the test's storage is throw-away);
  - chosen container ports get a hostPort on 127.0.0.1 (podman has no Service to reach them);
  - an httpGet livenessProbe becomes the same GET in the image's python3 (``podman_liveness``).
Everything else (securityContext, probes, resources, volumes, args) is kept as rendered.
"""

import copy

from tests.kube.manifests import containers, environment, pod_template

NAMESPACE = "txzserver"


def as_pod(workload, name, objects, secrets, host_ports=None):
    """A Pod manifest from a workload's template.

    ``secrets``: {(secret, key): value}; ``host_ports``: {container port name: host port}.
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
        podman_liveness(container)
    for claim in workload["spec"].get("volumeClaimTemplates", ()):
        spec.setdefault("volumes", []).append({"name": claim["metadata"]["name"], "emptyDir": {}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template["metadata"].get("labels", {})},
        "spec": spec,
    }


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
