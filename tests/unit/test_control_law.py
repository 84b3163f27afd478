"""Scenario tests of the control law against a plant whose truth is not the law's model (control_plant)."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from control_plant import Plant, assumed_profile, make_spec, observation

from thermostat.control import MEMORY_VERSION, decide, temperature_bounds
from thermostat.control.replicas import SCALE_UP_CONFIRMATIONS

pytestmark = pytest.mark.fast
PROFILE = assumed_profile()


def settle(plant: Plant, rate: float, periods: int = 40) -> None:
    for _ in range(periods):
        plant.step(rate)


def test_steady_load_makes_no_changes() -> None:
    plant = Plant(PROFILE, make_spec(), replicas=3)
    settle(plant, 4.0)
    before = (plant.replicas, plant.temperature)
    decisions = [plant.step(4.0) for _ in range(40)]
    assert {(d.replicas, d.routing_temperature) for d in decisions} == {before}
    assert all(d.conditions["SLOMet"].status == "True" for d in decisions)


def return_bound_periods(plant: Plant) -> int:
    """The stated bound (docs/control-law.md): one SLO window, then the rises of maxTemperatureStepUp."""
    spec, bounds = plant.spec, temperature_bounds(plant.spec, plant.profile)
    window = math.ceil(spec.slo.window_seconds / spec.behavior.period_seconds)
    return window + math.ceil((bounds.t_op - bounds.t_lo) / spec.behavior.max_temperature_step_up) + 1


def test_burst_within_range_drops_temperature_then_replicas_follow_and_it_recovers() -> None:
    spec = make_spec(quality={"minRoutingTemperature": 0.05})
    plant = Plant(PROFILE, spec, replicas=2)
    settle(plant, 3.0)
    steady_t, steady_n = plant.temperature, plant.replicas
    assert steady_t == pytest.approx(temperature_bounds(spec, PROFILE).t_op)
    first = plant.step(6.0)  # doubling: inside the knob's range at the floor
    assert first.routing_temperature < steady_t  # within one period
    assert first.replicas == steady_n  # the first periods of a burst are the temperature's
    assert f"waits for {SCALE_UP_CONFIRMATIONS + 1} periods" in first.reason
    following = [plant.step(6.0) for _ in range(SCALE_UP_CONFIRMATIONS)]
    assert following[-1].replicas > steady_n  # replicas follow once enough periods want them
    assert all(d.routing_temperature <= first.routing_temperature for d in following)
    while plant.ready() < plant.replicas:  # cold starts of 60-120 s
        plant.step(6.0)
    for _ in range(return_bound_periods(plant)):
        plant.step(6.0)
    assert plant.temperature == pytest.approx(steady_t)  # back at the operating point within the bound
    assert plant.latency_now(6.0) <= 15.0
    # The plant saturates earlier than the law's model (its knee is softer): the capacity correction
    # learns that, so the burst is met with about the replicas it needs (4 here), not replicas.max.
    needed = next(n for n in range(1, 17) if plant.latency_s(6.0, n, steady_t) <= 15.0)
    assert max(d.replicas for d in plant.history) <= 2 * needed


def test_triple_burst_lowers_temperature_at_once_and_adds_replicas_when_the_knob_is_spent() -> None:
    plant = Plant(PROFILE, make_spec(), replicas=2)
    settle(plant, 3.0)
    steady_t, steady_n = plant.temperature, plant.replicas
    burst = plant.step(9.0)
    assert burst.routing_temperature < steady_t
    assert burst.replicas == steady_n
    after = [plant.step(9.0) for _ in range(SCALE_UP_CONFIRMATIONS)]
    assert after[-1].replicas >= 3
    settle(plant, 9.0, 20)
    assert plant.temperature == pytest.approx(steady_t)
    assert plant.latency_now(9.0) <= 15.0


def test_load_drop_scales_down_only_after_the_window_and_never_below_min() -> None:
    spec = make_spec(replicas={"min": 2, "max": 16})
    plant = Plant(PROFILE, spec, replicas=2)
    settle(plant, 10.0, 160)  # long enough for the first overshoot to be scaled back: replicas steady
    high = plant.replicas
    assert high > 2
    window = spec.behavior.scale_down.stabilization_window_seconds
    start = plant.now
    counts = []
    while plant.now - start < window + 600:
        counts.append((plant.now - start, plant.step(0.2).replicas))
    assert all(n == high for t, n in counts if t < window)
    assert counts[-1][1] == 2
    assert min(n for _, n in counts) == 2
    # near the target, scale-downs are paced one SLO window apart: the quantile sees each before the next
    steps = [t for (t, n), (_, m) in itertools.pairwise(counts) if m < n]
    assert len(steps) >= 2
    assert all(b - a >= spec.slo.window_seconds for a, b in itertools.pairwise(steps))


def test_missing_metrics_during_burst_hold_and_never_scale_down() -> None:
    plant = Plant(PROFILE, make_spec(), replicas=4)
    settle(plant, 6.0)
    settings = (plant.replicas, plant.temperature)
    for drop in (("latency",), ("requestRate",), ("latency", "requestRate")):
        decision = plant.step(12.0, drop=drop)
        assert decision.held
        assert (decision.replicas, decision.routing_temperature) == settings
        verdict = decision.conditions["MetricsAvailable"]
        assert verdict.status == "False"
        assert verdict.reason == "MetricsMissing"
        assert drop[0] in verdict.message
        assert "hold" in decision.reason


def test_stale_observation_holds_and_replicas_action_only_scales_up() -> None:
    spec = make_spec(behavior={"onMetricsUnavailable": {"action": "Replicas", "replicas": 6}})
    plant = Plant(PROFILE, spec, replicas=4)
    observation = plant.observe(5.0)
    decision = decide(observation, spec, None, observation.time + 600, profile=PROFILE)
    assert decision.held
    assert decision.replicas == 6
    assert decision.conditions["MetricsAvailable"].reason == "MetricsStale"
    plant8 = Plant(PROFILE, spec, replicas=8)
    decision = decide(plant8.observe(5.0, drop=("latency",)), spec, None, 0.0, profile=PROFILE)
    assert decision.replicas == 8  # Replicas(n) is a floor, never a scale-down


@pytest.mark.parametrize(("priority", "reason"), [("SLO", "BudgetYieldsToSLO"), ("Budget", "SLOYieldsToBudget")])
def test_slo_and_budget_jointly_infeasible_follow_priority(priority: str, reason: str) -> None:
    spec = make_spec(budget={"powerWatts": 900, "priority": priority})
    plant = Plant(PROFILE, spec, replicas=2)
    settle(plant, 14.0, 20)
    decision = plant.step(14.0)
    assert decision.conditions["Feasible"].status == "False"
    assert decision.conditions["Feasible"].reason == reason
    if priority == "Budget":
        assert plant.power_w(14.0) <= 900
    else:
        assert plant.latency_now(14.0) <= 15.0


def test_budget_bound_steady_state_lowers_temperature_and_stays_within_budget() -> None:
    unbounded = Plant(PROFILE, make_spec(quality={"minRoutingTemperature": 0.3}), replicas=3)
    settle(unbounded, 6.0)
    limit = unbounded.power_w(6.0) * 0.97
    spec = make_spec(quality={"minRoutingTemperature": 0.3}, budget={"powerWatts": limit, "reserveFraction": 0.0})
    plant = Plant(PROFILE, spec, replicas=unbounded.replicas)
    settle(plant, 6.0)
    assert plant.power_w(6.0) <= limit
    assert plant.temperature < unbounded.temperature
    assert plant.history[-1].conditions["Feasible"].status == "True"
    quality = plant.history[-1].conditions["QualityWithinBudget"]
    assert quality.reason == "BelowOperatingPoint"  # the budget spends quality, and the status says so


def test_min_routing_temperature_is_never_crossed_even_when_the_slo_is_at_risk() -> None:
    spec = make_spec(quality={"minRoutingTemperature": 0.6})
    floor = temperature_bounds(spec, PROFILE).t_lo
    assert floor == pytest.approx(0.6)
    plant = Plant(PROFILE, spec, replicas=1)
    temperatures = [plant.step(rate).routing_temperature for rate in [1.0, 30.0, 30.0, 2.0, 50.0, 0.1]]
    assert min(temperatures) == pytest.approx(floor)  # the floor is used ...
    assert all(t >= floor - 1e-9 for t in temperatures)  # ... and never crossed


def test_memory_round_trips_through_json_and_a_restart_decides_the_same() -> None:
    plant = Plant(PROFILE, make_spec(), replicas=3, capacity_factor=0.8)
    settle(plant, 5.0, 20)
    assert plant.memory is not None
    assert plant.memory["version"] == MEMORY_VERSION
    stored = json.loads(json.dumps(plant.memory))
    observation = plant.observe(7.0)
    first = decide(observation, plant.spec, plant.memory, plant.now, profile=PROFILE)
    again = decide(observation, plant.spec, stored, plant.now, profile=PROFILE)
    assert first == again


def test_unknown_memory_version_resets_and_says_so() -> None:
    plant = Plant(PROFILE, make_spec(), replicas=2)
    decision = decide(plant.observe(3.0), plant.spec, {"version": 99, "x": 1}, 0.0, profile=PROFILE)
    assert decision.memory_reset
    assert "reset" in decision.reason
    assert decision.memory["version"] == MEMORY_VERSION


def test_online_correction_converges_when_replicas_are_slower_than_the_profile() -> None:
    plant = Plant(PROFILE, make_spec(), replicas=3, capacity_factor=0.75)
    errors = []
    for _ in range(240):  # an hour of 15 s periods at steady load
        plant.step(5.0)
        assert plant.memory is not None
        errors.append(plant.memory["latency_error"])
    assert errors[-1] < errors[5] / 3
    assert plant.memory["latency_scale"] * plant.memory["capacity_scale"] > 1.1  # slower replicas seen
    assert plant.latency_now(5.0) <= 15.0


def test_decision_before_any_ready_replica_keeps_temperature_and_replicas() -> None:
    spec = make_spec()
    plant = Plant(PROFILE, spec, replicas=2)
    settle(plant, 3.0)  # a warmed memory: a fresh one would keep the replicas whatever the law says
    seen = observation(
        time=plant.now, routing_temperature=0.8, replicas=2, ready_replicas=0, latency_s=1.0, request_rate=2.0
    )
    decision = decide(seen, spec, plant.memory, plant.now, profile=PROFILE)
    assert decision.routing_temperature == pytest.approx(0.8)
    assert decision.replicas == 2


def test_a_scale_down_needs_the_observations_consent() -> None:
    from thermostat.control.evidence import Evidence
    from thermostat.control.law import _observation_consents
    from thermostat.control.memory import LawMemory
    from thermostat.control.model import ResponseModel

    model = ResponseModel(PROFILE, tokens_per_request=200.0)
    target_s = 13.5
    seen = Evidence(
        latency_s=12.0, demand=6.0, completions=360.0, window_s=60.0, temperature=1.0, temperature_held_s=600.0,
        replicas=4, ready=4, excursion=False, warming=False, idle=False,
    )  # fmt: skip
    ratio = model.latency_s(6.0 / 2, 1.0) / model.latency_s(6.0 / 4, 1.0)
    assert 12.0 * ratio > 0.95 * target_s > 6.0 * ratio  # two replicas: over the limit from 12 s, not from 6 s
    kept, why = _observation_consents(2, "", seen, LawMemory(), 0.0, model=model, target_s=target_s, n_max=16)
    assert kept == 4
    assert "would see" in why
    calm = Evidence(**{**seen.__dict__, "latency_s": 6.0})  # ... from a calm observation they would not
    assert _observation_consents(2, "", calm, LawMemory(), 0.0, model=model, target_s=target_s, n_max=16)[0] == 2


def test_a_known_zero_load_plans_the_fewest_replicas_even_where_the_model_says_a_lone_request_misses() -> None:
    from thermostat.control.bounds import Bounds
    from thermostat.control.replicas import plan_replicas

    class SlowAtTheOperatingPoint:  # a model not taught yet: a lone request misses at T_op, fits at the floor
        def capacity(self, temperature: float, target_s: float) -> float:
            return 0.0 if temperature > 0.5 else 1.0

        def total_power_w(self, *args: object) -> float:
            return 0.0

    spec = make_spec(replicas={"min": 1, "max": 5})
    bounds = Bounds(t_lo=0.3, t_hi=1.0, t_op=0.7, n_min=1, n_max=5)
    plan = plan_replicas(SlowAtTheOperatingPoint(), 0.0, bounds=bounds, target_s=1.0, limit_w=None,  # type: ignore[arg-type]
                         spec=spec, reserve=1.15, current=1)  # fmt: skip
    assert plan.replicas == 1
