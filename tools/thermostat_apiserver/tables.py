"""``Table`` responses for ``kubectl get``: the CRD's printer columns, and the usual columns of built-in kinds."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext import parse as parse_jsonpath

from thermostat_apiserver.resources import ResourceType

Obj = dict[str, Any]


def human_age(created: str | None, now: datetime.datetime | None = None) -> str:
    """Age as kubectl shows it (``45s``, ``3m12s``, ``5h``, ``2d``)."""
    if not created:
        return "<unknown>"
    now = now or datetime.datetime.now(datetime.UTC)
    then = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def jsonpath_cell(obj: Obj, path: str) -> Any:
    """The value of a printer column's JSONPath (``.status.conditions[?(@.type=="Ready")].status``)."""
    try:
        matches = [m.value for m in parse_jsonpath("$" + path).find(obj)]
    except (JsonPathParserError, Exception):  # a bad column path shows an empty cell, as kubectl does
        return None
    if not matches:
        return None
    return matches[0] if len(matches) == 1 else ",".join(map(str, matches))


def _pod_cells(obj: Obj) -> list[Any]:
    statuses = obj.get("status", {}).get("containerStatuses", [])
    containers = obj.get("spec", {}).get("containers", [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    phase = obj.get("status", {}).get("phase", "Pending")
    if obj["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    return [f"{ready}/{len(containers)}", phase, restarts]


def _deployment_cells(obj: Obj) -> list[Any]:
    status = obj.get("status", {})
    desired = obj.get("spec", {}).get("replicas", 1)
    return [
        f"{status.get('readyReplicas', 0)}/{desired}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
    ]


def _configmap_cells(obj: Obj) -> list[Any]:
    return [len(obj.get("data") or {}) + len(obj.get("binaryData") or {})]


def _namespace_cells(obj: Obj) -> list[Any]:
    return [obj.get("status", {}).get("phase", "Active")]


def _event_cells(obj: Obj) -> list[Any]:
    involved = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    return [
        human_age(last[:19] + "Z" if last else None),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]


def _service_cells(obj: Obj) -> list[Any]:
    spec = obj.get("spec", {})
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"), "<none>", ports or "<none>"]


def _column(name: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": kind, "format": "", "description": name, "priority": priority}


BUILTIN_COLUMNS: dict[str, tuple[list[dict[str, Any]], Callable[[Obj], list[Any]]]] = {
    "pods": ([_column("Ready"), _column("Status"), _column("Restarts", "integer")], _pod_cells),
    "deployments.apps": (
        [_column("Ready"), _column("Up-to-date", "integer"), _column("Available", "integer")],
        _deployment_cells,
    ),
    "configmaps": ([_column("Data", "integer")], _configmap_cells),
    "events": (
        [_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"), _column("Message")],
        _event_cells,
    ),
    "services": ([_column("Type"), _column("Cluster-IP"), _column("External-IP"), _column("Port(s)")], _service_cells),
    "namespaces": ([_column("Status")], _namespace_cells),
}


def _partial_metadata(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(rt: ResourceType, objs: list[Obj], resource_version: str, *, include_object: str = "Metadata") -> Obj:
    """A ``meta.k8s.io/v1`` Table of ``objs``: Name, the kind's columns, Age."""
    name_column = {**_column("Name"), "format": "name", "description": "Name of the object"}
    age_column = _column("Age")
    if rt.crd_name is not None:
        custom = [c for c in rt.printer_columns if c.get("jsonPath") != ".metadata.creationTimestamp"]
        columns = [_column(c["name"], c.get("type", "string"), c.get("priority", 0)) for c in custom]

        def cells_of(obj: Obj) -> list[Any]:
            return [jsonpath_cell(obj, c["jsonPath"]) for c in custom]
    else:
        columns, cells_of = BUILTIN_COLUMNS.get(rt.key, ([], lambda obj: []))
    rows = []
    for obj in objs:
        row: Obj = {
            "cells": [obj["metadata"]["name"], *cells_of(obj), human_age(obj["metadata"].get("creationTimestamp"))]
        }
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = _partial_metadata(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [name_column, *columns, age_column],
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
