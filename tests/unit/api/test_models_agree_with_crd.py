"""Property test: the pydantic models and the CRD (OpenAPI + its own CEL text) accept the same specs.

Specs are generated valid, then a third of them get a mutation meant to break them and a third a
mutation to a boundary value (which may or may not be allowed). The CRD side is evaluated from the
generated CRD itself: jsonschema for the OpenAPI part, cel-python for ``x-kubernetes-validations``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thermostat.api.crd import routedmodel_crd
from thermostat.api.resource import API_VERSION, KIND, VERSION
from thermostat.api.spec import RoutedModelSpec
from thermostat.api.validation import validate_against_crd

pytestmark = pytest.mark.fast
CRD = routedmodel_crd()
Spec = dict[str, Any]

temperatures = st.floats(min_value=0.01, max_value=1.0)


@st.composite
def valid_specs(draw: st.DrawFn) -> Spec:
    lo = draw(st.integers(1, 20))
    spec: Spec = {
        "slo": {
            "quantile": draw(st.floats(0.5, 0.999)),
            "targetSeconds": draw(st.floats(0.01, 60)),
            "metric": draw(st.sampled_from(["RequestLatency", "TimeToFirstToken", "TimePerOutputToken"])),
        },
        "replicas": {"min": lo, "max": lo + draw(st.integers(0, 50))},
        "mode": draw(st.sampled_from(["Enforce", "Recommend"])),
    }
    if draw(st.booleans()):
        spec["model"] = {"image": "ghcr.io/x/runtime:1", "resources": {"gpus": draw(st.integers(0, 8))}}
    else:
        spec["targetRef"] = {"name": "existing-runtime"}
    if draw(st.booleans()):
        spec["budget"] = {"powerWatts": draw(st.floats(1, 1e5)), "priority": draw(st.sampled_from(["SLO", "Budget"]))}
    floor = draw(temperatures)
    spec["quality"] = {"minRoutingTemperature": floor, "maxRoutingTemperature": draw(st.floats(floor, 1.0))}
    if draw(st.booleans()):
        spec["behavior"] = {"periodSeconds": draw(st.integers(1, 600))}
    return spec


def _set(path: str, value: Any) -> Callable[[Spec], None]:
    def apply(spec: Spec) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return apply


def _delete(path: str) -> Callable[[Spec], None]:
    def apply(spec: Spec) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for key in parents:
            node = node.get(key, {})
        node.pop(leaf, None)

    return apply


def _swap_replicas(spec: Spec) -> None:
    spec["replicas"] = {"min": spec["replicas"]["max"] + 1, "max": spec["replicas"]["max"]}


def _both_sources(spec: Spec) -> None:
    spec["model"] = {"image": "x"}
    spec["targetRef"] = {"name": "y"}


def _no_source(spec: Spec) -> None:
    spec.pop("model", None)
    spec.pop("targetRef", None)


BREAKING: list[Callable[[Spec], None]] = [
    _swap_replicas,
    _set("slo.quantile", 1.5),
    _set("slo.quantile", 1.0),
    _set("slo.quantile", 0.0),
    _set("slo.quantile", -0.2),
    _set("slo.targetSeconds", 0),
    _set("slo.targetSeconds", "1s"),
    _delete("slo.targetSeconds"),
    _delete("replicas"),
    _set("replicas.max", 0),
    _set("replicas.min", "2"),
    _set("budget", {"powerWatts": 0}),
    _set("budget", {"powerWatts": -5.0}),
    _set("budget", {"energyJoulesPerRequest": -1}),
    _set("budget", {"priority": "SLO"}),
    _set("quality", {"minRoutingTemperature": 0.9, "maxRoutingTemperature": 0.4}),
    _set("quality.minRoutingTemperature", 0.0),
    _set("quality.maxRoutingTemperature", 1.01),
    _set("mode", "Auto"),
    _set("unknownField", True),
    _set("slo.unknown", 1),
    _set("behavior.onMetricsUnavailable", {"action": "Replicas"}),
    _set("behavior.onMetricsUnavailable", {"action": "Replicas", "replicas": 10_000}),
    _set("behavior.periodSeconds", 0),
    _both_sources,
    _no_source,
]
BOUNDARY: list[Callable[[Spec], None]] = [
    _set("slo.quantile", 0.999999),
    _set("slo.quantile", 1e-9),
    _set("quality.minRoutingTemperature", 1.0),
    _set("quality.maxRoutingTemperature", 1.0),
    _set("quality", {"minRoutingTemperature": 1e-6}),
    _set("quality", {"minRoutingTemperature": 0.5, "maxRoutingTemperature": 0.5}),
    _set("replicas.max", 1000),
    _set("replicas.max", 1001),
    _set("replicas", {"min": 7, "max": 7}),
    _set("budget", {"energyJoulesPer1kTokens": 1e-9}),
    _set("behavior.periodSeconds", 600),
    _set("behavior.periodSeconds", 601),
    _set("behavior.onMetricsUnavailable", {"action": "Replicas", "replicas": 1}),
    _set("slo.windowSeconds", 15),
    _set("slo.windowSeconds", 14),
    _set("quality.maxQualityLossPercent", 100),
    _set("quality.maxQualityLossPercent", 100.5),
    _set("quality.shadowFraction", 1.0),
    _set("quality.shadowFraction", 1.01),
    _set("model", {"image": "x", "runtime": {"maxBatch": 1024, "maxQueue": 0}}),
    _set("model", {"image": "x", "runtime": {"maxBatch": 1025}}),
    _set("model", {"image": "x", "runtime": {"maxTokensLimit": 0}}),
    _set("model", {"image": "x", "runtime": {"maxPromptTokens": "2048"}}),
]


@st.composite
def cases(draw: st.DrawFn, kind: int) -> Spec:
    spec = copy.deepcopy(draw(valid_specs()))
    if kind == 0:
        draw(st.sampled_from(BREAKING))(spec)
    elif kind == 1:
        draw(st.sampled_from(BOUNDARY))(spec)
    return spec


def crd_accepts(spec: Spec) -> bool:
    obj = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "x"}, "spec": spec}
    _, problems = validate_against_crd(CRD, obj, VERSION)
    return not problems


def pydantic_accepts(spec: Spec) -> bool:
    try:
        RoutedModelSpec.model_validate(spec)
    except pydantic.ValidationError:
        return False
    return True


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(*(cases(k) for k in range(3))), min_size=15, max_size=15))
def test_pydantic_and_crd_agree_on_every_spec(batch: list[tuple[Spec, Spec, Spec]]) -> None:
    specs = [spec for triple in batch for spec in triple]
    verdicts = [(crd_accepts(s), pydantic_accepts(s)) for s in specs]
    for spec, (by_crd, by_models) in zip(specs, verdicts, strict=True):
        assert by_crd == by_models, f"CRD says {by_crd}, models say {by_models} for {spec}"
    invalid = sum(1 for by_crd, _ in verdicts if not by_crd)
    assert invalid >= 0.3 * len(specs), f"only {invalid}/{len(specs)} generated specs were invalid"


@given(valid_specs())
@settings(max_examples=40, deadline=None)
def test_generated_valid_specs_are_valid_for_both(spec: Spec) -> None:
    assert crd_accepts(spec)
    assert pydantic_accepts(spec)
