"""The law without a routing profile (metrics.preset vLLM): replicas only, capacity learned online.

The plant's truth is the assumed H100 replica (tests/unit/control_plant.py, not the law's model); the
law knows nothing of it and plans with ``online_profile`` (a guess, or the spec's capacity hint).
"""

from __future__ import annotations

from typing import Any

import pytest
from control_plant import Plant, assumed_profile, make_spec

from thermostat.control.online import evidence_needed, online_profile, profile_for

pytestmark = pytest.mark.fast
TRUTH = assumed_profile()


def vllm_spec(**overrides: Any) -> Any:
    behavior = {"periodSeconds": 15, "scaleDown": {"stabilizationWindowSeconds": 0, "maxStepReplicas": 1}}
    return make_spec(metrics={"preset": "vLLM"}, behavior=behavior, **overrides)


def plant(replicas: int, **overrides: Any) -> Plant:
    spec = vllm_spec(**overrides)
    return Plant(TRUTH, spec, replicas=replicas, law_profile=profile_for(spec, TRUTH), cold_start_s=(30.0, 45.0))


def test_the_vllm_preset_plans_without_the_routing_profile() -> None:
    spec = vllm_spec(replicas={"min": 1, "max": 8, "capacityHintTokensPerSecond": 900})
    profile = profile_for(spec, TRUTH)
    assert profile.t_min == 1.0  # exact only: no routing knob
    assert profile.temperatures == (1.0,)
    assert profile.tokens_per_s(1.0, profile.max_batch) == 900
    assert profile_for(make_spec(), TRUTH) is TRUTH  # thermostat-runtime pods keep theirs
    assert online_profile(None).device == "assumed"


def test_an_overload_adds_replicas_and_only_replicas() -> None:
    p = plant(1)
    rate = 9.0  # the truth serves ~4.3 req/s per replica: three replicas at least
    decisions = [p.step(rate) for _ in range(80)]  # 20 minutes
    assert {d.routing_temperature for d in decisions} == {1.0}
    assert all("replicas only" in d.reason for d in decisions)
    assert p.replicas >= 3
    assert p.latency_s(rate) <= p.spec.slo.target_seconds
    assert decisions[-1].conditions["CapacityKnown"].reason == "LearnedOnline"


def test_no_scale_down_before_capacity_is_learned_then_it_comes() -> None:
    p = plant(6)
    for _ in range(20):  # five minutes without a request: a guess says nothing about the next load
        decision = p.step(0.0)
        assert decision.replicas == 6, decision.reason
        capacity = decision.conditions["CapacityKnown"]
        assert (capacity.status, capacity.reason) == ("False", "LearningOnline")
        assert "no scale-down" in capacity.message
    decisions = [p.step(1.0) for _ in range(60)]  # light traffic: evidence arrives, replicas go
    learned = next(i for i, d in enumerate(decisions) if d.conditions["CapacityKnown"].status == "True")
    assert all(d.replicas == 6 for d in decisions[:learned])
    assert learned >= evidence_needed(p.spec) - 1  # two SLO windows of evidence: 8 periods of 15 s
    assert p.replicas < 6
    assert p.latency_s(1.0) <= p.spec.slo.target_seconds
