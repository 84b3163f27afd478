"""Discovery and OpenAPI documents: what clients read before they talk about objects.

kubectl and Kopf find resources through the legacy discovery documents (``/api``, ``/apis``,
``/apis/<group>/<version>``). kubectl's ``apply`` reads the OpenAPI v3 documents to learn that the
server honours ``fieldValidation`` (then it leaves validation to us) and, for custom resources, their
schema. Short names and categories are advertised on the resource only, never on its subresources.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from thermostat_apiserver.resources import VERBS, Registry, ResourceType

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-thermostat-emulated",
    "gitCommit": "emulated",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _gv(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def api_group(group: str, versions: list[str]) -> dict[str, Any]:
    return {"name": group, "versions": [_gv(group, v) for v in versions], "preferredVersion": _gv(group, versions[0])}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [api_group(g, vs) for g, vs in sorted(registry.group_versions().items()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _subresource_entry(rt: ResourceType, sub: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"{rt.plural}/{sub}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": ["get", "patch", "update"],
    }
    if sub == "scale":
        entry.update(kind="Scale", group="autoscaling", version="v1")
    return entry


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = [rt for rt in registry.all() if rt.group == group and rt.version == version]
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(VERBS),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        resources += [_subresource_entry(rt, sub) for sub in rt.subresources]
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(rt: ResourceType) -> str:
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def openapi_v3_document(
    registry: Registry, group: str, version: str, schemas: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """One group-version's OpenAPI v3 document: PATCH operations advertising ``fieldValidation``, and
    the schemas of custom resources (``schemas`` maps a CRD name to its version's schema)."""
    types = [rt for rt in registry.all() if rt.group == group and rt.version == version]
    if not types:
        return None
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {}
    field_validation = {
        "name": "fieldValidation",
        "in": "query",
        "schema": {"type": "string", "uniqueItems": True},
        "description": "Ignore, Warn or Strict (unknown fields refused).",
    }
    for rt in types:
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        prefix = f"/{_gv_path(group, version)}" + ("/namespaces/{namespace}" if rt.namespaced else "")
        operation = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [field_validation],
            "responses": {"200": {"description": "OK"}},
        }
        paths[f"{prefix}/{rt.plural}/{{name}}"] = {"patch": operation, "put": operation}
        paths[f"{prefix}/{rt.plural}"] = {"post": operation}
        if rt.crd_name and rt.crd_name in schemas:
            components[schema_name(rt)] = {**schemas[rt.crd_name], "x-kubernetes-group-version-kind": [gvk]}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (emulated)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": components},
    }


def openapi_v3_index(registry: Registry, documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``/openapi/v3`` root: one URL per group-version, with a hash that changes with the document."""
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            path = _gv_path(group, version)
            digest = hashlib.sha256(json.dumps(documents.get(path), sort_keys=True).encode()).hexdigest()[:32].upper()
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
