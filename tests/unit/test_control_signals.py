"""Idle is known, Missing holds, demand is what was offered, and cold pods cause no panic (issue 13)."""

from __future__ import annotations

import pytest
from control_plant import Plant, assumed_profile, make_spec, observation

from thermostat.control import Decision, Idle, Missing, decide, temperature_bounds

pytestmark = pytest.mark.fast
PROFILE = assumed_profile()


def warmed(rate: float = 10.0, periods: int = 160, **spec: object) -> Plant:
    plant = Plant(PROFILE, make_spec(replicas={"min": 1, "max": 16}, **spec), replicas=2)
    for _ in range(periods):
        plant.step(rate)
    assert plant.replicas > 1
    return plant


def test_an_idle_model_scales_down_to_min_after_the_window() -> None:
    plant = warmed()
    window = plant.spec.behavior.scale_down.stabilization_window_seconds
    start, counts = plant.now, []
    while plant.now - start < window + 900:
        decision = plant.step(0.0)  # no request: latency and rates are Idle
        counts.append((plant.now - start, decision.replicas))
    assert isinstance(plant.observe(0.0).latency_s, Idle)
    assert not decision.held
    assert decision.conditions["SLOMet"].reason == "Idle"
    assert all(n == counts[0][1] for t, n in counts if t < window - plant.spec.behavior.period_seconds)
    assert counts[-1][1] == 1


def test_missing_latency_holds_forever_and_never_scales_down() -> None:
    plant = warmed()
    before = plant.replicas
    for _ in range(100):  # 25 minutes of a failing query, at no load
        decision = plant.step(0.0, drop=("latency",))
        assert decision.held
        assert decision.replicas == before
    assert decision.conditions["MetricsAvailable"].reason == "MetricsMissing"
    assert "latency" in decision.conditions["MetricsAvailable"].message


def test_demand_is_the_offered_rate_so_shed_requests_count() -> None:
    plant = warmed(rate=4.0)
    now, memory = plant.now, plant.memory
    common = {"time": now, "routing_temperature": plant.temperature, "replicas": plant.replicas}
    common |= {"ready_replicas": plant.replicas, "latency_s": 30.0, "token_rate": 800.0}
    offered = observation(**common, request_rate=12.0, served_rate=4.0, shed_rate=8.0)
    served_only = observation(**common, request_rate=4.0, served_rate=4.0, shed_rate=0.0)
    with_shed = decide(offered, plant.spec, memory, now, profile=PROFILE)
    without = decide(served_only, plant.spec, memory, now, profile=PROFILE)
    assert "load 12.00 req/s" in with_shed.reason
    # tokens per request come from what was served, not from the offered rate
    assert with_shed.memory["tokens_per_request"] == pytest.approx(without.memory["tokens_per_request"])
    assert with_shed.predicted_latency_s is not None
    assert without.predicted_latency_s is not None
    assert with_shed.predicted_latency_s > without.predicted_latency_s


def test_a_thin_window_over_target_does_not_move_the_temperature() -> None:
    spec = make_spec(slo={"quantile": 0.9, "targetSeconds": 5.0, "windowSeconds": 30})
    t_op = temperature_bounds(spec, PROFILE).t_op
    memory = None
    for i in range(6):  # the local stack's steady phase: 0.07 req/s, two completions a window
        now = 3.0 * i
        seen = observation(
            time=now, routing_temperature=t_op if memory else 1.0, window_s=30.0,
            latency_s=4.6, request_rate=0.07, served_rate=0.07, token_rate=1.7,
        )  # fmt: skip
        decision = decide(seen, spec, memory, now, profile=PROFILE)
        memory = decision.memory
        assert decision.routing_temperature >= t_op - 1e-9
        assert decision.replicas == 1
    assert "too few to act on" in decision.reason


def test_a_warming_pod_moves_the_temperature_one_step_only_and_teaches_nothing() -> None:
    plant = Plant(PROFILE, make_spec(quality={"minRoutingTemperature": 0.05}), replicas=2)
    for _ in range(60):
        plant.step(3.0)
    t_op, now = plant.temperature, plant.now
    seen = observation(
        time=now, routing_temperature=t_op, replicas=2, ready_replicas=2, latency_s=45.0,
        request_rate=6.0, served_rate=6.0, token_rate=1200.0,
    )  # fmt: skip

    def after(last_ready: int) -> Decision:
        memory = {**(plant.memory or {}), "last_ready": last_ready}
        return decide(seen, plant.spec, memory, now, profile=PROFILE)

    warming, settled = after(1), after(2)  # a pod turned ready just now / both were ready before
    assert "warming up" in warming.reason
    assert t_op - 0.15 <= warming.routing_temperature < t_op  # one step, not the floor
    assert settled.routing_temperature < warming.routing_temperature  # the same excursion, settled: further
    assert warming.memory["latency_scale"] == pytest.approx((plant.memory or {})["latency_scale"])
    assert warming.memory["capacity_scale"] == pytest.approx((plant.memory or {})["capacity_scale"])
    assert warming.memory["samples"] == (plant.memory or {})["samples"]


def test_a_missing_request_rate_is_not_idle() -> None:
    seen = observation(latency_s=Idle(0.0), request_rate=Missing("QueryFailed: 503"))
    decision = decide(seen, make_spec(), None, 0.0, profile=PROFILE)
    assert decision.held
    assert "QueryFailed" in decision.conditions["MetricsAvailable"].message


def test_a_zero_load_in_the_first_window_after_a_gap_holds_then_reads_idle() -> None:
    """A pod killed and restarted: its counters read zero before its first request ends (DESIGN §4)."""
    plant = warmed()
    before, window = plant.replicas, plant.spec.slo.window_seconds
    for _ in range(3):  # the pod is gone: no latency, no request rate
        assert plant.step(10.0, drop=("latency", "requestRate")).held
    back, decisions = plant.now, []
    while plant.now - back < window:  # back, counting from zero
        decisions.append(plant.step(0.0))
    assert all(d.held and d.replicas == before for d in decisions)
    assert all(d.conditions["SLOMet"].reason != "Idle" for d in decisions)
    available = decisions[-1].conditions["MetricsAvailable"]
    assert (available.status, available.reason) == ("False", "WindowIncomplete")
    assert "since the metrics came back" in available.message
    after = plant.step(0.0)  # a whole window of zero since: idle, as before the gap
    assert not after.held
    assert after.conditions["SLOMet"].reason == "Idle"


def test_a_load_read_in_the_first_window_after_a_gap_is_acted_on() -> None:
    plant = warmed()
    plant.step(10.0, drop=("latency", "requestRate"))
    decision = plant.step(10.0)
    assert not decision.held
    assert decision.conditions["MetricsAvailable"].status == "True"


def test_no_scale_down_on_the_partial_window_after_a_gap_then_the_usual_rules() -> None:
    plant = warmed(behavior={"scaleDown": {"stabilizationWindowSeconds": 0}})
    before, window = plant.replicas, plant.spec.slo.window_seconds
    plant.step(10.0, drop=("latency", "requestRate"))
    back, decisions = plant.now, []
    while plant.now - back < window:  # back at a tenth of the load: read over part of a window
        decisions.append(plant.step(1.0))
    assert all(not d.held and d.replicas == before for d in decisions)
    assert "no scale-down: metrics back" in decisions[-1].reason
    assert plant.step(1.0).replicas < before  # a whole window since: the scale-down rules as usual
