"""Checks of a RoutedModel spec deeper than the CRD's schema and CEL rules can express.

A spec that fails one is reported as ``Ready=False`` with reason ``InvalidSpec`` and a message
saying which field to fix and how; the operator then leaves the workload alone. Pure.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic

from thermostat.api.spec import RoutedModelSpec

# A Kubernetes resource quantity: a decimal number with an optional binary or decimal suffix.
QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
QUERY_FIELDS = ("latency", "request_rate", "token_rate", "power", "energy_rate", "quality")


def parse_spec(raw: Any) -> tuple[RoutedModelSpec | None, str | None]:
    """The spec as the models read it, or None and what is wrong (field path first)."""
    try:
        return RoutedModelSpec.model_validate(dict(raw or {}), strict=False), None
    except pydantic.ValidationError as error:
        problems = []
        for item in error.errors()[:3]:
            path = ".".join(str(part) for part in ("spec", *item["loc"]))
            problems.append(f"{path}: {str(item['msg']).removeprefix('Value error, ')}")
        return None, "; ".join(problems)


def spec_problems(spec: RoutedModelSpec, *, default_prometheus_url: str | None) -> list[str]:
    """Everything wrong with a schema-valid spec, each naming the field and the fix."""
    problems = []
    if spec.metrics.prometheus.url is None and not default_prometheus_url:
        problems.append(
            "spec.metrics.prometheus.url is unset and the operator has no THERMOSTAT_PROMETHEUS_URL: "
            "set one of them to the Prometheus that scrapes the runtime pods"
        )
    if spec.model is not None:
        for name in ("cpu", "memory"):
            value = getattr(spec.model.resources, name)
            if value is not None and not QUANTITY.match(value):
                problems.append(
                    f"spec.model.resources.{name}: {value!r} is not a Kubernetes quantity (e.g. '4', '500m', '16Gi')"
                )
    for name in QUERY_FIELDS:
        query = getattr(spec.metrics.queries, name)
        if query and "{selector}" not in query:
            problems.append(
                f"spec.metrics.queries.{_camel(name)} must contain {{selector}} so it reads only this "
                "RoutedModel's series"
            )
    floor = spec.quality.min_routing_temperature
    if floor is not None and floor > spec.quality.max_routing_temperature:
        problems.append("spec.quality.minRoutingTemperature exceeds maxRoutingTemperature: lower it")
    return problems


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
