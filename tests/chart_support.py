"""Rendering the Helm chart for tests, through Helm's own Go library (``helm-python-sdk``, import
``helm_python``; no helm binary), and validating what it renders.

``render(values)`` returns the chart's manifests as dicts; ``ALL_ON`` turns every optional part on.
Built-in kinds are checked with ``kubernetes-validate --strict``; prometheus-operator kinds against
the strict schemas in ``tests/data/prometheus-operator`` (from the models PyPI ships for its CRDs);
Kopf's peering object against the CRD the chart ships for it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "thermostat"
KUBE_VERSION = "1.30.0"
RELEASE, NAMESPACE = "thermostat", "thermostat-system"
MONITORING_SCHEMAS = REPO / "tests" / "data" / "prometheus-operator"
ALL_ON: dict[str, Any] = {
    "operator": {"prometheusUrl": "http://prometheus.monitoring:9090"},
    "monitoring": {
        "podMonitor": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "scrapeConfig": {"enabled": True},
        "discoveryRbac": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    },
}


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Values layered left to right (nested dicts merged, anything else replaced)."""
    result: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = merged(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
    return result


def render(values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The chart's manifests for ``values`` (NOTES.txt left out), in template order."""
    chart = helm_python.Chart.load(CHART)
    files = chart.render(values or {}, name=RELEASE, namespace=namespace, is_install=True)
    documents = []
    for path in sorted(files):
        if path.endswith("NOTES.txt"):
            continue
        documents += [doc for doc in yaml.safe_load_all(files[path]) if doc]
    return documents


def notes(values: dict[str, Any] | None = None) -> str:
    chart = helm_python.Chart.load(CHART)
    files = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in files.items() if path.endswith("NOTES.txt"))


def crds() -> list[dict[str, Any]]:
    """The CRDs the chart installs (Helm's crds/ folder: installed once, never templated)."""
    return [yaml.safe_load(item["data"]) for item in helm_python.Chart.load(CHART).crds]


def validate(document: dict[str, Any]) -> None:
    """Raise when ``document`` is not a valid object of its kind (strict: unknown fields refused)."""
    if document["apiVersion"].startswith("monitoring.coreos.com/"):
        schema = json.loads((MONITORING_SCHEMAS / f"{document['kind'].lower()}.schema.json").read_text())
        jsonschema.validate(document, schema)
        return
    if document["apiVersion"].startswith("kopf.dev/"):
        (crd,) = [c for c in crds() if c["spec"]["names"]["kind"] == document["kind"]]
        group = crd["spec"]["group"]
        (version,) = [v for v in crd["spec"]["versions"] if f"{group}/{v['name']}" == document["apiVersion"]]
        jsonschema.validate(document, version["schema"]["openAPIV3Schema"])
        return
    kubernetes_validate.validate(document, KUBE_VERSION, strict=True)


def find(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
