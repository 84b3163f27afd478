"""Pure helpers for applying desired objects: does the live object already hold what we want?"""

from __future__ import annotations

from typing import Any


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
    """The merge patch bringing a live object to ``desired``: labels, owner references and content.

    Name, namespace and kind are identity and stay out; other metadata (annotations set by people or
    tools) is left alone.
    """
    metadata = desired.get("metadata", {})
    patch: dict[str, Any] = {
        key: value for key, value in desired.items() if key not in {"apiVersion", "kind", "metadata"}
    }
    patch["metadata"] = {key: metadata[key] for key in ("labels", "ownerReferences") if key in metadata}
    return patch
