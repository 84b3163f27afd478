"""Pure helpers for applying desired objects: does the live object already hold what we want?"""

from __future__ import annotations

from typing import Any

from thermostat.api.resource import CREATED_BY_ANNOTATION


def contains(live: Any, desired: Any) -> bool:
    """True when every field of ``desired`` is in ``live`` with the same value.

    Server-side defaults (a port's protocol, a Deployment's revisionHistoryLimit) appear only in
    ``live`` and are ignored; lists must match element by element, as a merge patch replaces them.
    """
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and contains(live[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(map(contains, live, desired))
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return float(live) == float(desired)
    return bool(live == desired)


def update_patch(desired: dict[str, Any]) -> dict[str, Any]:
    """The merge patch bringing a live object to ``desired``: labels, annotations, owner references, content.

    Name, namespace and kind are identity and stay out; a merge patch adds the desired labels and
    annotations, so other ones (set by people or tools) are left alone.
    """
    metadata = desired.get("metadata", {})
    patch: dict[str, Any] = {
        key: value for key, value in desired.items() if key not in {"apiVersion", "kind", "metadata"}
    }
    patch["metadata"] = {key: metadata[key] for key in ("labels", "annotations", "ownerReferences") if key in metadata}
    return patch


def foreign(live: dict[str, Any], desired: dict[str, Any]) -> bool:
    """True when ``desired`` claims to be created by a RoutedModel and ``live`` was not created by it.

    Created means: the ``created-by`` mark, or (objects of older versions) one of ``desired``'s
    ownerReferences. A foreign object is never updated: that would take it from its owner.
    """
    claimed = ((desired.get("metadata") or {}).get("annotations") or {}).get(CREATED_BY_ANNOTATION)
    if claimed is None:
        return False
    meta = live.get("metadata") or {}
    if (meta.get("annotations") or {}).get(CREATED_BY_ANNOTATION) == claimed:
        return False
    wanted = {ref.get("uid") for ref in (desired.get("metadata") or {}).get("ownerReferences") or []}
    return not any(ref.get("uid") in wanted for ref in meta.get("ownerReferences") or [])
