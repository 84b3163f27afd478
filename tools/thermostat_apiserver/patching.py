"""The three patch formats a Kubernetes API server accepts, applied to plain object dicts.

JSON merge patch (RFC 7386) and JSON patch (RFC 6902, with ``test``) are exact; the strategic merge
patch that ``kubectl apply`` sends for built-in kinds merges the well-known keyed lists
(containers by ``name``, ports by ``containerPort``/``port``, conditions by ``type``...) and honours
the ``$patch``, ``$setElementOrder`` and ``$deleteFromPrimitiveList`` directives. Server-side apply
is approximated by the same merge (no field ownership), and creates a missing object as it should.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from thermostat_apiserver.errors import ApiError

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Keyed lists of the built-in kinds (patchMergeKey in the Kubernetes API types).
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
}
MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902; a failed ``test`` or a bad path is a 422, as the API server answers."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    try:
        return jsonpatch.JsonPatch(operations).apply(target)
    except jsonpatch.JsonPatchTestFailed as error:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {error}"
        ) from error
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as error:
        raise ApiError(422, "Invalid", f"the JSON patch cannot be applied: {error}") from error


def _merge_key(field: str, items: list[Any]) -> str | None:
    for key in MERGE_KEYS.get(field, ()):
        if items and all(isinstance(item, dict) and key in item for item in items):
            return key
    return None


def _merge_list(field: str, target: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(field, [item for item in patch if not (isinstance(item, dict) and "$patch" in item)] or patch)
    if key is None:
        if field in MERGED_PRIMITIVE_LISTS:
            return list(target) + [item for item in patch if item not in target]
        return copy.deepcopy(patch)
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        index = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item.get(key)), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _reorder(items: list[Any], order: list[Any], field: str) -> list[Any]:
    key = _merge_key(field, order)
    if key is None:
        return items
    rank = {entry.get(key): index for index, entry in enumerate(order)}
    return sorted(items, key=lambda item: rank.get(item.get(key) if isinstance(item, dict) else None, len(rank)))


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch over the keyed lists of the built-in kinds (see the module docstring)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    orders = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field, []) if item not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key) or [], value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(result[field], order, field)
    return result


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a PATCH body of the given content type; an unsupported type is a 415, as a server says."""
    kind = content_type.split(";", maxsplit=1)[0].strip()
    if kind == MERGE_PATCH:
        result = merge_patch(target, patch)
    elif kind == JSON_PATCH:
        result = json_patch(target, patch)
    elif kind in (STRATEGIC_PATCH, APPLY_PATCH):
        # Server-side apply is approximated as a strategic merge of the applied configuration: fields
        # it sets win; field ownership (and removing fields a manager stops applying) is not tracked.
        result = strategic_merge_patch(target, patch)
    else:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_PATCH}, {APPLY_PATCH}",
        )
    if not isinstance(result, dict):
        raise ApiError(422, "Invalid", "the patched object is not an object")
    return result
