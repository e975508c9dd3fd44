"""Pods for `podman kube play`, derived from the rendered workloads (never written by hand).

podman (Debian's 4.3) runs Pods and Deployments but has no StatefulSets, Jobs, Services,
ConfigMap/Secret references across objects or NetworkPolicies. So each workload's pod template
is taken as rendered, with only what podman lacks filled in:
  - the pod is named after the workload's Service (zeo, broker), and the pods share a podman
    network whose DNS answers pod names: `zeo:8100` and `tcp://broker:5559` resolve as the
    Services make them resolve in a cluster;
  - env from ConfigMaps and Secrets, and fieldRefs, are resolved into plain values;
  - a StatefulSet's volumeClaimTemplates become emptyDirs (the test's storage is throw-away);
  - chosen container ports get a hostPort on 127.0.0.1 (podman has no Service to reach them).
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
    for claim in workload["spec"].get("volumeClaimTemplates", ()):
        spec.setdefault("volumes", []).append({"name": claim["metadata"]["name"], "emptyDir": {}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template["metadata"].get("labels", {})},
        "spec": spec,
    }
