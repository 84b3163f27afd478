"""Validate objects against a CRD the way a Kubernetes API server does: defaults, OpenAPI, CEL.

Used by ``thermostat validate`` (offline, before ``kubectl apply``) and by the emulated API server.
The OpenAPI v3 schema is checked with ``jsonschema`` (Draft 4, whose boolean ``exclusiveMinimum``
is what CRDs use), unknown fields are refused as ``fieldValidation=Strict`` does, and every
``x-kubernetes-validations`` rule is evaluated from the CRD's own text with ``cel-python``. Values are
typed by the schema before CEL sees them (a ``number`` field holding ``1`` is the double ``1.0``), as
the server does. Every problem names its field path, what is wrong and what is allowed.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import celpy
import jsonschema
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an object, at a field path such as ``spec.replicas.min``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def apply_defaults(schema: dict[str, Any], data: Any) -> Any:
    """Return a copy of ``data`` with the schema's defaults filled in, as the server's defaulting does."""
    if isinstance(data, dict) and "properties" in schema:
        out = dict(data)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if isinstance(data, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {k: apply_defaults(schema["additionalProperties"], v) for k, v in data.items()}
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in data]
    return data


def _strict(schema: Any) -> Any:
    """A copy of a structural schema that refuses unknown fields (fieldValidation=Strict)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _describe_allowed(error: jsonschema.ValidationError) -> str:
    """A sentence for one jsonschema error: what is wrong and what is allowed."""
    schema: dict[str, Any] = dict(error.schema) if isinstance(error.schema, dict) else {}
    value: Any = error.instance
    kind = error.validator
    if kind == "type":
        return f"expected {schema['type']!s}, got {type(value).__name__} {value!r}"
    if kind == "enum":
        return f"{value!r} is not allowed; allowed: {', '.join(map(str, schema['enum']))}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        low = schema.get("minimum")
        high = schema.get("maximum")
        left = "(" if schema.get("exclusiveMinimum") else "["
        right = ")" if schema.get("exclusiveMaximum") or high is None else "]"
        allowed = f"{left}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{right}"
        return f"{value!r} is out of range; allowed: {allowed}"
    if kind == "additionalProperties":
        unknown = sorted(set(value) - set(schema.get("properties", {})))
        allowed = ", ".join(schema.get("properties", {}))
        return f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {allowed}"
    if kind == "required":
        return str(error.message).replace("is a required property", "is required")
    if kind == "pattern":
        return f"{value!r} does not match the pattern {schema['pattern']}"
    return str(error.message)


def schema_problems(schema: dict[str, Any], data: Any, *, root: str = "") -> list[Problem]:
    """OpenAPI problems of ``data`` (defaults already applied), unknown fields included."""
    validator = jsonschema.Draft4Validator(_strict(schema))
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = root
        for key in error.absolute_path:
            path = _join(path, key)
        if error.validator == "required":
            missing = error.message.split("'")[1]
            problems.append(Problem(_join(path, missing), "required field is missing"))
            continue
        problems.append(Problem(path, _describe_allowed(error)))
    return problems


def _to_cel(schema: dict[str, Any], data: Any) -> Any:
    """Convert JSON data to CEL values typed by the schema (numbers are doubles, integers ints)."""
    kind = schema.get("type")
    if isinstance(data, bool) or data is None:
        return json_to_cel(data)
    if kind == "number" and isinstance(data, int | float):
        return celtypes.DoubleType(float(data))
    if isinstance(data, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
        return celtypes.MapType({celtypes.StringType(k): _to_cel(props.get(k, extra), v) for k, v in data.items()})
    if isinstance(data, list):
        return celtypes.ListType([_to_cel(schema.get("items", {}), item) for item in data])
    return json_to_cel(data)


@functools.lru_cache(maxsize=256)
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def _walk_rules(schema: dict[str, Any], data: Any, path: str) -> Iterator[tuple[dict[str, Any], Any, str]]:
    """Yield (schema node, data, path) for every node that carries CEL rules and is present."""
    if schema.get("x-kubernetes-validations"):
        yield schema, data, path
    if isinstance(data, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in data:
                yield from _walk_rules(sub, data[name], _join(path, name))
    elif isinstance(data, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(data):
            yield from _walk_rules(schema["items"], item, _join(path, index))


def cel_problems(schema: dict[str, Any], data: Any, *, root: str = "", skip: tuple[str, ...] = ()) -> list[Problem]:
    """Evaluate every ``x-kubernetes-validations`` rule of the schema against ``data``.

    Nodes whose subtree already failed the OpenAPI checks (paths in ``skip``) are not evaluated:
    their rules assume well-typed input.
    """
    problems = []
    for node, value, path in _walk_rules(schema, data, root):
        if any(bad == path or bad.startswith((path + ".", path + "[")) or not path for bad in skip):
            continue
        typed = _to_cel(node, value)
        for rule in node["x-kubernetes-validations"]:
            try:
                ok = bool(_program(rule["rule"]).evaluate({"self": typed}))
            except CELEvalError as error:
                ok, detail = False, f" (rule could not be evaluated: {error.args[0]})"
            else:
                detail = ""
            if not ok:
                where = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
                problems.append(Problem(where, rule.get("message", f"failed rule: {rule['rule']}") + detail))
    return problems


def crd_version_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The openAPIV3Schema of one served version of a CRD."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"CRD {crd['metadata']['name']} does not serve version {version}")


def validate_against_crd(crd: dict[str, Any], obj: dict[str, Any], version: str) -> tuple[Any, list[Problem]]:
    """Default, then validate ``obj`` as the API server would; returns (defaulted object, problems).

    CEL rules run on every part of the object that passed the OpenAPI checks.
    """
    schema = crd_version_schema(crd, version)
    defaulted = apply_defaults(schema, obj)
    problems = schema_problems(schema, defaulted)
    problems += cel_problems(schema, defaulted, skip=tuple(p.path for p in problems))
    return defaulted, problems
