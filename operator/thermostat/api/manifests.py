"""Offline checks of RoutedModel manifests: what ``thermostat validate FILE...`` reports.

A manifest passes when the CRD's OpenAPI schema, its CEL rules and the pydantic models all accept
it. The CRD used is the one generated from the models, so this is exactly what an API server with
the committed CRD would say, plus the deeper checks the operator itself makes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pydantic
import yaml

from thermostat.api.crd import routedmodel_crd
from thermostat.api.resource import API_VERSION, KIND, VERSION
from thermostat.api.spec import RoutedModelSpec
from thermostat.api.validation import Problem, validate_against_crd

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass
class DocumentReport:
    """The verdict on one YAML document of a file."""

    source: str
    index: int
    name: str | None = None
    kind: str = KIND
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        where = f"{self.source} (document {self.index + 1})"
        return f"{where} {self.kind}/{self.name}" if self.name else where


def _pydantic_problems(spec: Any) -> list[Problem]:
    try:
        RoutedModelSpec.model_validate(spec)
    except pydantic.ValidationError as error:
        problems = []
        for item in error.errors():
            path = "spec"
            for key in item["loc"]:
                path = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(Problem(path, message))
        return problems
    return []


def _metadata_problems(metadata: Any) -> list[Problem]:
    if not isinstance(metadata, dict):
        return [Problem("metadata", "expected a mapping with at least `name`")]
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return [Problem("metadata.name", "required field is missing")]
    if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        return [Problem("metadata.name", f"{name!r} is not a valid name: lower-case letters, digits, '-' and '.'")]
    return []


def check_routedmodel(obj: Any) -> list[Problem]:
    """Every problem with one parsed RoutedModel manifest (empty when valid)."""
    if not isinstance(obj, dict):
        return [Problem("", f"expected a mapping (a Kubernetes object), got {type(obj).__name__}")]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if kind != KIND or api_version != API_VERSION:
        return [
            Problem(
                "kind" if kind != KIND else "apiVersion",
                f"this is {kind or 'no kind'} ({api_version or 'no apiVersion'}), not a {KIND} "
                f"({API_VERSION}); `thermostat validate` checks RoutedModel manifests only",
            )
        ]
    problems = _metadata_problems(obj.get("metadata"))
    defaulted, crd_problems = validate_against_crd(routedmodel_crd(), obj, VERSION)
    problems += crd_problems
    if not crd_problems and isinstance(defaulted.get("spec"), dict):
        problems += _pydantic_problems(defaulted["spec"])
    return problems


def check_text(text: str, source: str) -> list[DocumentReport]:
    """Parse a (multi-document) YAML text and check each document."""
    if not text.strip():
        return [DocumentReport(source, 0, problems=[Problem("", "the file is empty: no manifest to check")])]
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        return [DocumentReport(source, 0, problems=[Problem("", f"YAML does not parse{where}: {reason}")])]
    reports = []
    for index, doc in enumerate(documents):
        if doc is None:
            continue  # an empty document between `---` separators, as kubectl skips it
        metadata = doc.get("metadata") if isinstance(doc, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        kind = str(doc.get("kind") or "?") if isinstance(doc, dict) else "?"
        reports.append(DocumentReport(source, index, str(name) if name else None, kind, check_routedmodel(doc)))
    if not reports:
        reports.append(DocumentReport(source, 0, problems=[Problem("", "the file holds no manifest")]))
    return reports
