"""Validation at the door: custom resources against their CRD (OpenAPI, unknown fields, CEL), CRDs themselves.

The schema and rules are read from the stored CustomResourceDefinition object, so any CRD works,
through the project's validator (:func:`thermostat.api.validation.validate_against_crd`). With
``fieldValidation=Strict`` unknown fields are refused with a 422 naming them; otherwise they are
pruned, as a real server does for structural schemas.
"""

from __future__ import annotations

import copy
from typing import Any

from thermostat.api.validation import crd_version_schema, validate_against_crd
from thermostat_apiserver import errors
from thermostat_apiserver.resources import CRD_KEY, ResourceType, check_crd
from thermostat_apiserver.store import Obj, Store, timestamp

_ALWAYS_KEPT = ("apiVersion", "kind", "metadata")


def prune(schema: dict[str, Any], data: Any, *, root: bool = False) -> Any:
    """Drop the fields the structural schema does not declare (what a server does without Strict)."""
    if isinstance(data, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if properties is not None:
            return {
                k: prune(properties[k], v) if k in properties else v
                for k, v in data.items()
                if k in properties or (root and k in _ALWAYS_KEPT)
            }
        if isinstance(extra, dict):
            return {k: prune(extra, v) for k, v in data.items()}
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], item) for item in data]
    return data


def with_object_fields(crd: Obj) -> Obj:
    """The CRD with apiVersion, kind and metadata declared at the root, as the server always allows them."""
    crd = copy.deepcopy(crd)
    for version in crd["spec"].get("versions", []):
        root = version.get("schema", {}).get("openAPIV3Schema")
        if isinstance(root, dict) and "properties" in root:
            for field, schema in (
                ("apiVersion", {"type": "string"}),
                ("kind", {"type": "string"}),
                ("metadata", {"type": "object"}),
            ):
                root["properties"].setdefault(field, schema)
    return crd


def _established(crd: Obj) -> Obj:
    """A CRD is accepted at once: names accepted, established, its storage version recorded."""
    crd = copy.deepcopy(crd)
    now = timestamp()
    storage = [v["name"] for v in crd["spec"]["versions"] if v.get("storage", True)]
    crd["status"] = {
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": storage[:1],
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
    }
    return crd


class CrdAdmission:
    """The admission step the store runs on every write (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __call__(self, rt: ResourceType, old: Obj | None, new: Obj, strict: bool) -> Obj:
        if rt.key == CRD_KEY:
            return self._admit_crd(new)
        if rt.crd_name is None:
            return new
        crd = next(
            (
                obj
                for key, obj in self._store.all_objects()
                if key == CRD_KEY and obj["metadata"]["name"] == rt.crd_name
            ),
            None,
        )
        if crd is None:
            raise errors.not_found(rt.plural, new["metadata"].get("name", ""), rt.group)
        return self._validate(rt, crd, new, strict)

    def _admit_crd(self, crd: Obj) -> Obj:
        problems = check_crd(crd)
        if problems:
            raise errors.invalid(
                "CustomResourceDefinition",
                crd["metadata"].get("name", ""),
                "apiextensions.k8s.io",
                [("", problem) for problem in problems],
            )
        return _established(crd)

    def _validate(self, rt: ResourceType, crd: Obj, obj: Obj, strict: bool) -> Obj:
        crd = with_object_fields(crd)
        if not strict:
            obj = prune(crd_version_schema(crd, rt.version), obj, root=True)
        defaulted, problems = validate_against_crd(crd, obj, rt.version)
        if problems:
            unknown = all(problem.message.startswith("unknown field") for problem in problems)
            raise errors.invalid(
                rt.kind,
                obj["metadata"].get("name", ""),
                rt.group,
                [(problem.path, problem.message) for problem in problems],
                unknown=unknown,
            )
        return dict(defaulted)
