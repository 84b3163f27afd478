"""Property tests of the law, with memory warmed by a plant (a fresh memory keeps the replicas in place
whatever the law wants, which would make every replica assertion vacuous)."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest
from control_plant import Plant, assumed_profile, make_spec, observation
from hypothesis import given, settings
from hypothesis import strategies as st

from thermostat.api import RoutedModelSpec
from thermostat.control import decide, temperature_bounds

pytestmark = pytest.mark.fast
PROFILE = assumed_profile()
SPEC = make_spec(replicas={"min": 1, "max": 40})
maybe = st.one_of(st.none(), st.floats(min_value=0.0, max_value=500.0, allow_nan=False))


@cache
def warmed(rate: float, periods: int = 80) -> Plant:
    """A plant run at a steady ``rate`` until its law has settled (memory, replicas, temperature)."""
    plant = Plant(PROFILE, SPEC, replicas=2, seed=int(rate * 10))
    for _ in range(periods):
        plant.step(rate)
    return plant


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Any, RoutedModelSpec, dict[str, Any], float]:
    n_min = draw(st.integers(1, 5))
    n_max = draw(st.integers(n_min, 20))
    t_min = draw(st.sampled_from([None, 0.05, 0.3, 0.7, 1.0]))
    quality: dict[str, Any] = {} if t_min is None else {"minRoutingTemperature": t_min}
    quality["maxQualityLossPercent"] = draw(st.sampled_from([0.0, 1.0, 5.0, 40.0]))
    budget = draw(st.sampled_from([None, {"powerWatts": 800}, {"powerWatts": 5000, "priority": "Budget"}]))
    extra = {"budget": budget} if budget else {}
    spec = make_spec(replicas={"min": n_min, "max": n_max}, quality=quality, **extra)
    plant = warmed(draw(st.sampled_from([0.5, 3.0, 12.0])))
    replicas = draw(st.integers(1, 25))
    seen = observation(
        time=plant.now,
        routing_temperature=draw(st.floats(min_value=0.01, max_value=1.0)),
        replicas=replicas,
        ready_replicas=draw(st.integers(0, replicas)),
        latency_s=draw(maybe),
        request_rate=draw(maybe),
        token_rate=draw(maybe),
        power_w=draw(maybe),
        queue_depth=draw(maybe),
        quality_kl_nats=draw(st.one_of(st.none(), st.floats(min_value=0.0, max_value=2.0))),
        shadow_token_rate=draw(maybe),
    )
    return seen, spec, copy.deepcopy(plant.memory) or {}, plant.now


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_outputs_always_within_bounds(case: tuple[Any, RoutedModelSpec, dict[str, Any], float]) -> None:
    seen, spec, memory, now = case
    decision = decide(seen, spec, memory, now, profile=PROFILE)
    bounds = temperature_bounds(spec, PROFILE, quality_scale=decision.memory["quality_scale"])
    assert bounds.t_lo - 1e-9 <= decision.routing_temperature <= bounds.t_hi + 1e-9 or decision.held
    assert bounds.t_lo - 1e-9 <= (decision.operating_temperature or 0.0) <= bounds.t_hi + 1e-9
    assert 0 < decision.routing_temperature <= 1.0
    if decision.held:
        assert decision.replicas >= min(seen.replicas, spec.replicas.max)
    else:
        assert spec.replicas.min <= decision.replicas <= spec.replicas.max
        if decision.routing_temperature < bounds.t_op - 1e-9:  # no scale-down below the operating point
            assert decision.replicas >= min(seen.replicas, spec.replicas.max) or spec.budget is not None
    assert set(decision.conditions) == {
        "SLOMet",
        "WithinBudget",
        "MetricsAvailable",
        "Feasible",
        "QualityWithinBudget",
        "CapacityKnown",
    }


def replicas_after(plant: Plant, rate: float, periods: int = 3) -> int:
    """The replicas a copy of ``plant`` asks for after ``periods`` at ``rate`` (the scale-up waits one)."""
    trial = copy.deepcopy(plant)
    for _ in range(periods):
        trial.step(rate)
    return trial.replicas


def wish_at(plant: Plant, rate: float) -> int:
    """The replicas the law wants (its plan, before the stabilization windows) on seeing ``rate`` once.

    Its actual answer in that period is the replicas in place (a scale-up waits a few periods, a scale-down
    its window); over several periods learning moves between the two latency regimes, so the wish of
    one period is what is monotone in the load.
    """
    trial = copy.deepcopy(plant)
    decision = trial.step(rate)
    return int(decision.memory["recommendations"][-1][1])


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([0.5, 3.0, 12.0]), st.floats(0.0, 40.0), st.floats(0.0, 40.0))
def test_more_load_never_yields_a_smaller_wish_from_a_warmed_memory(base: float, low: float, high: float) -> None:
    low, high = sorted((low, high))
    plant = warmed(base)
    assert wish_at(plant, high) >= wish_at(plant, low)


def test_the_load_property_is_not_vacuous() -> None:
    """From a warmed memory the law's answer does depend on the load, both ways, and is acted on."""
    plant = warmed(3.0)
    assert wish_at(plant, 12.0) > plant.replicas > 1
    assert wish_at(plant, 0.0) < plant.replicas
    assert replicas_after(plant, 12.0) > plant.replicas
    assert replicas_after(plant, 0.0, periods=40) < plant.replicas  # idle: down after the 300 s window


def test_a_denormal_latency_reading_teaches_nothing_and_raises_nothing() -> None:
    # Found by the property above: 5e-324 s over a predicted quantile underflows to a ratio of 0.
    plant = warmed(3.0)
    seen = observation(time=plant.now, replicas=1, ready_replicas=1, latency_s=5e-324, request_rate=1.0)
    decision = decide(seen, SPEC, copy.deepcopy(plant.memory), plant.now, profile=PROFILE)
    assert decision.memory["latency_scale"] == plant.memory["latency_scale"]
