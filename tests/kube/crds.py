"""Custom resources checked offline against the CRDs they belong to (config/kubernetes/crds: the
PodMonitor and PrometheusRule of the Prometheus Operator, KEDA's ScaledObject, as their projects
publish them).

kubernetes-validate knows only the built-in kinds (it warns and passes anything else), so each
CRD's ``openAPIV3Schema`` is turned into a JSON Schema here the way the API server reads it:
an object with ``properties`` takes no other field unless it says
``x-kubernetes-preserve-unknown-fields`` (kubectl's default strict field validation refuses
unknown fields), ``nullable`` allows null, ``x-kubernetes-int-or-string`` an integer or a string.
CEL rules (``x-kubernetes-validations``) are not evaluated.
"""

import copy
import pathlib

import jsonschema
import yaml

CRD_DIR = pathlib.Path(__file__).resolve().parents[2] / "config" / "kubernetes" / "crds"


def _strict(schema):
    """The API server's reading of an OpenAPI v3 schema node, as a JSON Schema (a copy)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    node = {key: _strict(value) for key, value in schema.items()}
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["anyOf"] = node.get("anyOf", []) + [{"type": "integer"}, {"type": "string"}]
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and not node.get("x-kubernetes-embedded-resource")):
        node["additionalProperties"] = False
    return node


def load(directory=CRD_DIR):
    """{(apiVersion, kind): JSON Schema} of every served version of every CRD in ``directory``."""
    schemas = {}
    for path in sorted(directory.glob("*.yaml")):
        for crd in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):  # libyaml: MBs of CRDs
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # the API server checks metadata itself (ObjectMeta), not the CRD
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                schemas[f"{spec['group']}/{version['name']}", spec["names"]["kind"]] = _strict(schema)
    return schemas


class Validator:
    """Errors of custom resources against the CRDs of ``directory``."""

    def __init__(self, directory=CRD_DIR):
        self.schemas = load(directory)

    def knows(self, obj):
        return (obj.get("apiVersion"), obj.get("kind")) in self.schemas

    def errors(self, obj):
        """Every schema error of ``obj`` as "path: message"; KeyError for a kind without a CRD."""
        schema = self.schemas[obj["apiVersion"], obj["kind"]]
        validator = jsonschema.Draft202012Validator(schema)
        return sorted(f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
                      for error in validator.iter_errors(obj))
