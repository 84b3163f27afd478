"""A staged rollout in the simulator with per-pod settings: the operator's own state machine and A/B test
judge canary replicas against stable ones on a synthetic trace (the shared trace's figures are in
docs/BENCHMARKS.md, from benchmarks/rollout_ab.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from control_plant import assumed_profile, make_spec

from thermostat.sim.rollout import study
from thermostat.sim.trace import synthetic_trace
from thermostat.sim.truth import Truth

PROFILE = assumed_profile()
SPEC = make_spec(rollout={"steps": [10, 25, 50], "analysis": {"intervalSeconds": 120, "minRequests": 100}},
                 quality={"shadowFraction": 0.15})  # fmt: skip
TRACE = synthetic_trace(duration_s=900.0, mean_rate=10.0, diurnal_amplitude=0.0, bursts=(), flash_crowds=(), seed=4)
CANDIDATE = 0.86  # the assumed profile's loss there is 0.94 %, within the 1 % budget


@pytest.mark.fast
def test_a_router_that_loses_quality_is_rolled_back_within_one_interval_and_stable_never_changes() -> None:
    result = study(TRACE, SPEC, PROFILE, replace(Truth(), quality_factor=4.0), candidate_t=CANDIDATE, dt_s=0.2)
    assert result.verdict == "RolledBack"
    assert result.verdict_s is not None
    assert result.verdict_s <= 120.0 + SPEC.behavior.period_seconds
    assert result.stable_temperatures == {1.0}
    assert 0 < result.canary_requests < 0.2 * result.total_requests


@pytest.mark.fast
def test_a_candidate_as_good_as_its_profile_is_promoted_step_by_step() -> None:
    result = study(TRACE, SPEC, PROFILE, Truth(), candidate_t=CANDIDATE, dt_s=0.2)
    assert result.verdict == "Promoted"
    assert [line.split()[1] for line in result.analyses] == ["Passed:"] * 3
    assert result.canary_loss_percent < SPEC.quality.max_quality_loss_percent
