"""A router rollout's temperature rules in the pure state machine: both tracks serve the promoted point,
a rise or a burst drop at once, a large fall waits and is staged once the router's verdict is in."""

from __future__ import annotations

import pytest

from thermostat.api.spec import Rollout
from thermostat.api.status import RolloutPhase
from thermostat.control.rollout import RolloutInput, advance

RULES = Rollout.model_validate({"steps": [25, 50], "analysis": {"intervalSeconds": 60, "minRequests": 100}})
OLD, NEW = "runtime:1", "runtime:2"

pytestmark = pytest.mark.fast


def inp(now: float, *, law: float = 0.8, op: float = 0.8, router: str = NEW) -> RolloutInput:
    return RolloutInput(now=now, law_temperature=law, operating_temperature=op, in_force=0.8, router=router,
                        served_router=OLD, replicas=4)  # fmt: skip


def started() -> RolloutInput:
    return inp(0.0)


def test_a_router_rollout_sizes_the_canary_from_the_total_and_keeps_one_temperature() -> None:
    step = advance(None, RULES, started())
    assert step.status is not None
    assert (step.status.candidate_router, step.status.stable_router) == (NEW, OLD)
    assert (step.canary_replicas, step.canary_temperature, step.canary_pods) == (1, None, ())


def test_a_large_fall_waits_during_a_router_rollout_and_a_burst_passes() -> None:
    state = advance(None, RULES, started()).status
    held = advance(state, RULES, inp(10.0, law=0.5, op=0.5))
    assert held.stable_temperature == pytest.approx(0.8)  # the fall waits for the router's verdict
    burst = advance(state, RULES, inp(10.0, law=0.3, op=0.8))
    assert burst.stable_temperature == pytest.approx(0.3)  # the SLO's drop reaches every pod


def test_a_rise_during_a_router_rollout_reaches_both_tracks_at_once() -> None:
    state = advance(None, RULES, started()).status
    risen = advance(state, RULES, inp(10.0, law=0.95, op=0.95))
    assert risen.stable_temperature == pytest.approx(0.95)
    assert risen.status is not None
    assert risen.status.stable_temperature == pytest.approx(0.95)


def test_a_changed_image_supersedes_the_router_rollout_without_applying_a_held_fall() -> None:
    state = advance(None, RULES, started()).status
    step = advance(state, RULES, inp(10.0, law=0.5, op=0.5, router="runtime:3"))
    assert step.status is not None
    assert (step.status.phase, step.status.history[-1].action) == (RolloutPhase.ROLLED_BACK, "Superseded")
    assert step.stable_temperature == pytest.approx(0.8)
    assert step.canary_replicas == 0
