"""Generate the RoutedModel CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema (draft 2020-12); a CRD wants an OpenAPI v3 *structural* schema: no
``$ref``, no ``anyOf`` with null, no titles, boolean ``exclusiveMinimum``, no ``additionalProperties:
false`` beside ``properties`` (the server prunes or, with fieldValidation=Strict, refuses unknown
fields instead). This module does that translation once; ``thermostat crd`` prints the result and a
test keeps the committed ``crds/`` copy fresh.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from thermostat.api.resource import (
    CATEGORIES,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from thermostat.api.spec import RoutedModelSpec
from thermostat.api.status import RoutedModelStatus

CRD_FILE_NAME = f"{GROUP}_{PLURAL}.yaml"
REGENERATE_COMMAND = f"thermostat crd > crds/{CRD_FILE_NAME}"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Replicas",
        "type": "integer",
        "jsonPath": ".status.current.replicas",
        "description": "Replicas in force.",
    },
    {
        "name": "Ready-Replicas",
        "type": "integer",
        "jsonPath": ".status.current.readyReplicas",
        "description": "Replicas ready to serve.",
        "priority": 1,
    },
    {
        "name": "Temperature",
        "type": "number",
        "jsonPath": ".status.current.routingTemperature",
        "description": "Routing temperature in force (1 = exact).",
    },
    {
        "name": "Latency",
        "type": "string",
        "jsonPath": ".status.display.latency",
        "description": "Latency quantile / SLO target.",
    },
    {
        "name": "Power",
        "type": "string",
        "jsonPath": ".status.display.power",
        "description": "GPU power / budget ('~' marks an estimate).",
    },
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "priority": 1, "description": "Enforce or Recommend."},
    {
        "name": "Rollout",
        "type": "string",
        "jsonPath": ".status.rollout.phase",
        "description": "Staged rollout: Progressing, Paused, Promoted or RolledBack.",
    },
    {
        "name": "Canary",
        "type": "integer",
        "jsonPath": ".status.rollout.canaryPercent",
        "description": "Canary share asked for, percent of the pods.",
        "priority": 1,
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Summary condition.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline every ``$ref`` (keeping sibling keys such as description) and recurse."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        # The field's own description is more specific than the type's docstring.
        node = {**target, **siblings}
    return {key: _resolve(value, defs) for key, value in node.items()}


def _structural(node: Any) -> Any:
    """Turn one resolved JSON Schema node into its OpenAPI v3 structural form."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        # Optional[X] in pydantic is anyOf[X, null]; in Kubernetes an absent field is the None.
        kept = [branch for branch in any_of if branch.get("type") != "null"]
        if len(kept) != 1:
            raise ValueError(f"cannot express anyOf with {len(kept)} non-null branches in a CRD: {any_of}")
        node = {**kept[0], **node}
        if node.get("default", ...) is None:
            del node["default"]
    for key in ("title", "$defs"):
        node.pop(key, None)
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node.get(bound), bool):
            node[limit] = node.pop(bound)
            node[bound] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
        node.setdefault("type", "object")
    if node.get("required") == []:
        del node["required"]
    return {key: _structural(value) for key, value in node.items()}


def openapi_schema(model: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model, as a CRD embeds it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    result: dict[str, Any] = _structural(_resolve(raw, defs))
    return result


def routedmodel_crd() -> dict[str, Any]:
    """The full CustomResourceDefinition of RoutedModel."""
    root = {
        "type": "object",
        "description": "A model served by routed runtime pods, kept inside its latency SLO and power "
        "budget at the lowest energy by Thermostat.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "thermostat.dev/v1alpha1"},
            "kind": {"type": "string", "description": "RoutedModel"},
            "metadata": {"type": "object"},
            "spec": openapi_schema(RoutedModelSpec),
            "status": openapi_schema(RoutedModelStatus),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "thermostat", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """The CRD as the YAML committed in ``crds/``."""
    header = f"# Generated from thermostat.api by `{REGENERATE_COMMAND}`; do not edit.\n"
    return header + yaml.safe_dump(routedmodel_crd(), sort_keys=False, width=100)
