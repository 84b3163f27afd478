"""Label selectors and field selectors, parsed from the query string as the API server reads them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from thermostat_apiserver.errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_CMP_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_./-]*)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b``)."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    if match := _CMP_RE.match(term):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _SET_RE.match(term):
        negated, key, op, values = match.groups()
        if op:
            allowed = {v.strip() for v in values.split(",")}
            if op == "in":
                return lambda labels: labels.get(key) in allowed
            return lambda labels: labels.get(key) not in allowed
        if negated:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(
        f"unable to parse requirement {term!r} of the label selector: expected key, !key, "
        "key=value, key!=value, key in (a,b) or key notin (a,b)"
    )


def label_selector(text: str | None) -> Predicate:
    """A predicate over objects for ``labelSelector``; empty or missing selects everything."""
    checks = [_label_term(term) for term in _split_terms(text or "")]
    return lambda obj: all(check(obj.get("metadata", {}).get("labels") or {}) for check in checks)


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string value of a dotted field (``involvedObject.name``), '' when absent, as fields.Set has it."""
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def _field_check(path: str, value: str, *, negated: bool) -> Predicate:
    return lambda obj: (field_value(obj, path) == value) != negated


def field_selector(text: str | None) -> Predicate:
    """A predicate for ``fieldSelector`` (``=``, ``==``, ``!=`` over any dotted field)."""
    checks: list[Predicate] = []
    for term in _split_terms(text or ""):
        match = _CMP_RE.match(term)
        if not match:
            raise bad_request(f"invalid field selector {term!r}: expected field=value or field!=value")
        path, op, value = match.groups()
        checks.append(_field_check(path, value, negated=op == "!="))
    return lambda obj: all(check(obj) for check in checks)


def matches_label_selector_object(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A structured ``LabelSelector`` (matchLabels, matchExpressions) over a label set."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(op, False)
        if not ok:
            return False
    return True


def selector_string(selector: dict[str, Any]) -> str:
    """The string form of a structured selector (for ``Scale.status.selector``)."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key = expr.get("operator"), expr.get("key")
        values = ",".join(sorted(expr.get("values") or []))
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": f"{key}",
                "DoesNotExist": f"!{key}",
            }.get(op, "")
        )
    return ",".join(term for term in terms if term)
