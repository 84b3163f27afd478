"""Which pods a scale-down should remove first: not-ready ones, then the newest (least warmed up). Pure."""

from __future__ import annotations

from typing import Any


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pods_to_remove(pods: list[dict[str, Any]], count: int) -> list[str]:
    """Names of the ``count`` pods to mark with the lowest deletion cost.

    Pods already terminating are skipped: they are leaving anyway and do not count.
    """
    alive = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    newest_first = sorted(alive, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
    ordered = sorted(newest_first, key=_ready)  # stable: not-ready first, newest first within each group
    return [p["metadata"]["name"] for p in ordered[: max(0, count)]]
