"""Kubernetes label selectors (``matchLabels`` and ``matchExpressions``): as a query string, and matched. Pure.

A selector that selects nothing in particular (empty, or unreadable) selects no pods here: the
operator must never mark pods that are not its target's.
"""

from __future__ import annotations

from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def _expressions(selector: dict[str, Any]) -> list[dict[str, Any]]:
    expressions: list[dict[str, Any]] = list(selector.get("matchExpressions") or [])
    for expression in expressions:
        if expression.get("operator") not in OPERATORS:
            raise ValueError(f"label selector operator {expression.get('operator')!r} is not one of {OPERATORS}")
    return expressions


def selector_query(selector: dict[str, Any]) -> str | None:
    """The ``labelSelector`` query text; None when the selector is empty (it would select everything)."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in _expressions(selector):
        key, operator = expression["key"], expression["operator"]
        values = ",".join(sorted(expression.get("values") or []))
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
             "DoesNotExist": f"!{key}"}[operator]
        )  # fmt: skip
    return ",".join(parts) or None


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether an object with ``labels`` is selected; an empty selector matches nothing."""
    if selector_query(selector) is None:
        return False
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in _expressions(selector):
        key, values = expression["key"], expression.get("values") or []
        present = key in labels
        ok = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[expression["operator"]]
        if not ok:
            return False
    return True
