"""Property tests of the law: outputs stay within bounds; more load never means fewer replicas."""

from __future__ import annotations

import pytest
from control_plant import assumed_profile, make_spec
from hypothesis import given, settings
from hypothesis import strategies as st
from observations import observed

from thermostat.control import Observation, decide, temperature_bounds

pytestmark = pytest.mark.fast
PROFILE = assumed_profile()

rates = st.floats(min_value=0.0, max_value=200.0, allow_nan=False)
maybe = st.one_of(st.none(), st.floats(min_value=0.0, max_value=500.0, allow_nan=False))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Observation, object]:
    n_min = draw(st.integers(1, 5))
    n_max = draw(st.integers(n_min, 20))
    t_min = draw(st.sampled_from([None, 0.05, 0.3, 0.7, 1.0]))
    quality = {} if t_min is None else {"minRoutingTemperature": t_min}
    budget = draw(st.sampled_from([None, {"powerWatts": 800}, {"powerWatts": 5000, "priority": "Budget"}]))
    extra = {"budget": budget} if budget else {}
    spec = make_spec(replicas={"min": n_min, "max": n_max}, quality=quality, **extra)
    replicas = draw(st.integers(1, 25))
    observation = observed(
        time=0.0,
        routing_temperature=draw(st.floats(min_value=0.01, max_value=1.0)),
        replicas=replicas,
        ready_replicas=draw(st.integers(0, replicas)),
        latency_s=draw(maybe),
        request_rate=draw(maybe),
        token_rate=draw(maybe),
        power_w=draw(maybe),
        queue_depth=draw(maybe),
    )
    return observation, spec


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_outputs_always_within_bounds(case: tuple[Observation, object]) -> None:
    observation, spec = case
    decision = decide(observation, spec, None, 0.0, profile=PROFILE)  # type: ignore[arg-type]
    bounds = temperature_bounds(spec, PROFILE)  # type: ignore[arg-type]
    assert bounds.t_lo - 1e-9 <= decision.routing_temperature <= bounds.t_hi + 1e-9 or decision.held
    assert 0 < decision.routing_temperature <= 1.0
    if decision.held:
        assert decision.replicas >= min(observation.replicas, spec.replicas.max)  # type: ignore[attr-defined]
    else:
        assert spec.replicas.min <= decision.replicas <= spec.replicas.max  # type: ignore[attr-defined]
    assert set(decision.conditions) == {"SLOMet", "WithinBudget", "MetricsAvailable", "Feasible"}


@settings(max_examples=200, deadline=None)
@given(rates, rates, st.floats(min_value=0.05, max_value=1.0), st.integers(1, 10))
def test_more_load_never_yields_fewer_replicas_at_the_same_temperature(
    low: float, high: float, temperature: float, replicas: int
) -> None:
    low, high = sorted((low, high))
    spec = make_spec(replicas={"min": 1, "max": 40})

    def wanted(rate: float) -> int:
        observation = observed(
            time=0.0,
            routing_temperature=temperature,
            replicas=replicas,
            ready_replicas=replicas,
            latency_s=5.0,
            request_rate=rate,
        )
        return decide(observation, spec, None, 0.0, profile=PROFILE).replicas

    assert wanted(high) >= wanted(low)
