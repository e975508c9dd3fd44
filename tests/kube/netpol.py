"""NetworkPolicy evaluation on pod labels (Kubernetes semantics, for the rendered manifests).

A connection from pod A to port P of pod B is allowed when both hold:
  - B is not isolated for ingress (no policy of its namespace selects it with policyTypes
    Ingress), or one such policy has an ingress rule whose ``from`` matches A and whose
    ``ports`` match P;
  - A is not isolated for egress, or one policy selecting it with Egress has an egress rule
    whose ``to`` matches B and whose ``ports`` match P.
An empty or missing ``from``/``to`` matches every peer, missing ``ports`` every port; several
peers or ports in a list are alternatives; a peer with namespaceSelector and podSelector needs
both. Ports are numbers or the names of the destination's container ports.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict
    namespace_labels: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)  # container port name -> (number, protocol)

    def __hash__(self):
        return hash((self.name, self.namespace))


def selects(selector, labels):
    """Whether a label selector ({} selects everything) matches these labels."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression["key"], expression["operator"], expression.get("values", ())
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer, policy_namespace, pod):
    if "ipBlock" in peer:
        return False  # address ranges: never a pod of these tests
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], pod.namespace_labels):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), pod.labels)


def _port_matches(rule_ports, destination, port, protocol):
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        number = rule_port.get("port")
        if number is None:
            return True
        if isinstance(number, str):
            named = destination.ports.get(number)
            if named is None or named[1] != protocol:
                continue
            number = named[0]
        if number <= port <= rule_port.get("endPort", number):
            return True
    return False


def _applies(policy, pod, direction):
    types = policy["spec"].get("policyTypes") or (
        ["Ingress", "Egress"] if "egress" in policy["spec"] else ["Ingress"])
    return (direction in types
            and policy["metadata"].get("namespace", pod.namespace) == pod.namespace
            and selects(policy["spec"].get("podSelector", {}), pod.labels))


def allowed(policies, source, destination, port, protocol="TCP"):
    """Whether ``source`` may open a connection to ``port`` of ``destination``."""
    return (_allowed_one_way(policies, destination, source, port, protocol, "Ingress")
            and _allowed_one_way(policies, source, destination, port, protocol, "Egress"))


def _allowed_one_way(policies, subject, peer, port, protocol, direction):
    relevant = [p for p in policies if _applies(p, subject, direction)]
    if not relevant:
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    destination = subject if direction == "Ingress" else peer
    for policy in relevant:
        namespace = policy["metadata"].get("namespace", subject.namespace)
        for rule in policy["spec"].get(rules_key) or ():
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(p, namespace, peer) for p in peers):
                continue
            if _port_matches(rule.get("ports"), destination, port, protocol):
                return True
    return False
