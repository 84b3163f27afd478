"""Scenario tests of the law where the observation and the model disagree (virtual time, pure).

What the local stack found: an excursion the model does not predict must still lower the temperature
at once, with replicas following once a few periods in a row want them; a low request rate must still teach the latency
correction; and a fresh law at no load must not read "a lone request misses the SLO" as a reason to
jump to the floor and the most replicas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from control_plant import Plant, assumed_profile, make_spec, observation

from thermostat.api import RoutedModelSpec
from thermostat.control import Decision, Profile, decide, temperature_bounds
from thermostat.control.replicas import SCALE_UP_CONFIRMATIONS
from thermostat.profiles import load_profile

pytestmark = pytest.mark.fast
ASSUMED = assumed_profile()
LOCAL_STACK = Path(__file__).resolve().parents[2] / "examples" / "local-stack.yaml"


def local_stack_spec(**slo: Any) -> RoutedModelSpec:
    data = yaml.safe_load(LOCAL_STACK.read_text(encoding="utf-8"))["spec"]
    data["slo"].update(slo)
    return RoutedModelSpec.model_validate(data)


def profiles() -> list[Profile]:
    """The default profile (the measured CPU one when committed) and the assumed H100 one."""
    return [load_profile(), ASSUMED]


def test_an_excursion_the_model_does_not_predict_lowers_temperature_first_then_replicas_follow() -> None:
    plant = Plant(ASSUMED, make_spec(), replicas=2, tokens_per_request=150)
    for _ in range(40):
        plant.step(4.0)
    steady_t, steady_n = plant.temperature, plant.replicas
    plant.capacity_factor = 0.7  # same request rate, replicas suddenly 30% slower: only latency shows it
    assert plant.latency_now(4.0) > 15.0
    first = plant.step(4.0)
    assert first.routing_temperature < steady_t  # the first decision that sees it
    assert first.replicas == steady_n
    decisions = [plant.step(4.0) for _ in range(40)]
    scale_up = next(i for i, d in enumerate(decisions) if d.replicas > steady_n)
    assert scale_up <= SCALE_UP_CONFIRMATIONS  # once enough periods in a row want it
    assert plant.ready() == plant.replicas  # 40 periods: every cold start (<= 120 s) is over
    assert plant.latency_now(4.0) <= 15.0
    assert plant.temperature > temperature_bounds(plant.spec, ASSUMED).t_lo  # recovers once they are ready


def test_no_temperature_rise_while_the_observed_latency_is_over_target() -> None:
    spec = make_spec(quality={"minRoutingTemperature": 0.05})  # the floor the fast path may use

    def temperature_after(latency_s: float) -> float:
        seen = observation(
            time=0.0, routing_temperature=0.2, replicas=4, ready_replicas=4, latency_s=latency_s, request_rate=0.5
        )
        return decide(seen, spec, None, 0.0, profile=ASSUMED).routing_temperature

    assert temperature_after(2.0) > 0.2  # light load: the model alone raises it toward T_op
    assert temperature_after(14.0) < 0.2  # over 15 s x (1 - 10%): down one step at least, never up


def run_local_stack(profile: Profile, latency_s: float, rate: float, periods: int) -> list[Decision]:
    """The law on examples/local-stack.yaml, fed the same observation each period (a pod never turns ready)."""
    spec = local_stack_spec()
    memory: dict[str, Any] | None = None
    temperature, replicas, now, decisions = 1.0, 1, 0.0, []
    for _ in range(periods):
        seen = observation(
            time=now,
            routing_temperature=temperature,
            replicas=replicas,
            ready_replicas=1,
            window_s=30.0,
            latency_s=latency_s,
            request_rate=rate,
            token_rate=rate * 24,
        )
        decision = decide(seen, spec, memory, now, profile=profile)
        memory, temperature, replicas = decision.memory, decision.routing_temperature, decision.replicas
        decisions.append(decision)
        now += spec.behavior.period_seconds
    return decisions


@pytest.mark.parametrize("profile", profiles(), ids=lambda p: p.provenance)
def test_an_slo_violation_at_a_low_rate_scales_up_to_the_max_and_lowers_temperature(profile: Profile) -> None:
    decisions = run_local_stack(profile, latency_s=30.0, rate=0.4, periods=20)  # 12 completions a window
    spec = local_stack_spec()
    floor = temperature_bounds(spec, profile).t_lo
    assert decisions[0].routing_temperature < 1.0  # at once
    assert decisions[0].replicas == 1  # replicas from the next period
    reached = next(i for i, d in enumerate(decisions) if d.replicas == spec.replicas.max)
    assert reached <= 3
    assert all(d.replicas == spec.replicas.max for d in decisions[reached:])  # never scaled back down
    assert all(d.routing_temperature == pytest.approx(floor) for d in decisions[reached:])
    memory = decisions[-1].memory
    assert memory["samples"] > 0  # learned from fewer than 20 completions a window
    assert memory["latency_scale"] > 3.0  # beyond the old bound


def test_learning_weighs_a_thin_window_less_than_a_full_one() -> None:
    spec = local_stack_spec()

    def scale_after(rate: float) -> float:
        seen = observation(
            time=0.0, routing_temperature=1.0, replicas=2, ready_replicas=2, latency_s=40.0, request_rate=rate
        )
        return float(decide(seen, spec, None, 0.0, profile=ASSUMED).memory["latency_scale"])

    thin, full = scale_after(0.2), scale_after(2.0)  # 6 and 60 completions in the 30 s window
    assert 1.0 < thin < full


@pytest.mark.parametrize("profile", profiles(), ids=lambda p: p.provenance)
@pytest.mark.parametrize(("target_s", "rate"), [(10.0, 0.0), (5.0, 0.0), (5.0, 0.05)])
def test_a_fresh_law_at_no_load_within_the_slo_changes_nothing(profile: Profile, target_s: float, rate: float) -> None:
    spec = local_stack_spec(targetSeconds=target_s)
    seen = observation(
        time=0.0, routing_temperature=1.0, replicas=1, ready_replicas=1, latency_s=1.98, request_rate=rate
    )
    decision = decide(seen, spec, None, 0.0, profile=profile)
    assert decision.replicas == 1
    assert decision.routing_temperature >= temperature_bounds(spec, profile).t_op
