"""Regenerate the prometheus-operator schemas the chart tests validate against (run by hand).

The schemas come from the models PyPI ships for prometheus-operator's CRDs
(``cloudcoil-models-prometheus-operator``, generated from the CRDs of the release it is versioned
after), made strict: an object with declared properties refuses any other, as
``kubernetes-validate --strict`` does for the built-in kinds.

    pip install --target /tmp/cc --no-deps cloudcoil cloudcoil-models-prometheus-operator==0.80.1.0
    PYTHONPATH=/tmp/cc python tests/data/prometheus-operator/generate.py
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cloudcoil.models.prometheus_operator import v1

KINDS = ("PodMonitor", "ServiceMonitor", "PrometheusRule")


def strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: strict(value) for key, value in node.items()}
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):  # Go's inline flag; Python wants it first
            node["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


def main() -> None:
    here = Path(__file__).parent
    source = f"cloudcoil-models-prometheus-operator {version('cloudcoil-models-prometheus-operator')}"
    for kind in KINDS:
        schema = strict(getattr(v1, kind).model_json_schema(by_alias=True))
        schema["$comment"] = f"monitoring.coreos.com/v1 {kind}, from {source} (generate.py beside this file)"
        (here / f"{kind.lower()}.schema.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
