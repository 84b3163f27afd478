"""What a RoutedModel created, what it only drives, and how it lets go: pure, over object dicts.

Two marks, both annotations (labels would change what selectors pick):
- ``thermostat.dev/created-by: <routedmodel>`` on every object the operator created; only these carry
  the RoutedModel's ownerReference, so only these go with it when it is deleted.
- ``thermostat.dev/managed-by: <routedmodel>`` on a user's object the operator drives in place (the
  targetRef Deployment, a user's routing ConfigMap). Its ownerReferences and labels are never
  written; on a user's ConfigMap ``thermostat.dev/original-data`` keeps, as JSON, the value each key
  had before the operator wrote it (null: the key was absent). Deleting the RoutedModel (its
  finalizer) restores those keys and removes the marks; nothing else of the user's is touched.
"""

from __future__ import annotations

import json
from typing import Any

from thermostat.api.resource import CREATED_BY_ANNOTATION as CREATED_BY
from thermostat.api.resource import MANAGED_BY_ANNOTATION as MANAGED_BY
from thermostat.api.resource import ORIGINAL_DATA_ANNOTATION as ORIGINAL_DATA


def _annotations(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def created_by(live: dict[str, Any], *, routedmodel: str, uid: str) -> bool:
    """True for an object this RoutedModel created (its mark, or, from older versions, its ownerReference)."""
    if _annotations(live).get(CREATED_BY) == routedmodel:
        return True
    refs = (live.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def manager(live: dict[str, Any] | None) -> str | None:
    """The RoutedModel driving this user's object, if any."""
    return _annotations(live).get(MANAGED_BY)


def adoption_patch(live: dict[str, Any], routedmodel: str, data: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The merge patch marking a user's object as driven by ``routedmodel``; None when it already is.

    ``data``: keys the operator needs in a ConfigMap; absent ones are added with these values, and
    the values before (present or not) are kept in ``original-data`` for the release.
    """
    if manager(live) == routedmodel:
        return None
    annotations: dict[str, Any] = {MANAGED_BY: routedmodel}
    patch: dict[str, Any] = {"metadata": {"annotations": annotations}}
    if data is not None:
        current = live.get("data") or {}
        annotations[ORIGINAL_DATA] = json.dumps({key: current.get(key) for key in sorted(data)}, sort_keys=True)
        missing = {key: value for key, value in data.items() if key not in current}
        if missing:
            patch["data"] = missing
    return patch


def release_patch(live: dict[str, Any] | None, routedmodel: str) -> dict[str, Any] | None:
    """The merge patch giving a user's object back as it was; None when this RoutedModel does not drive it."""
    if live is None or manager(live) != routedmodel:
        return None
    annotations = _annotations(live)
    patch: dict[str, Any] = {"metadata": {"annotations": {MANAGED_BY: None}}}
    if ORIGINAL_DATA in annotations:
        patch["metadata"]["annotations"][ORIGINAL_DATA] = None
        try:
            original = json.loads(annotations[ORIGINAL_DATA])
        except ValueError:
            original = None  # edited by hand into something unreadable: restore nothing rather than guess
        if isinstance(original, dict) and original:
            patch["data"] = {str(key): value for key, value in original.items()}
    return patch
