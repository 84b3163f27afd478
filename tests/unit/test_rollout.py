"""The staged rollout's pure parts: the A/B test and the state machine, with an injected clock."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from thermostat.api.spec import Rollout
from thermostat.api.status import RolloutPhase, RolloutStatus
from thermostat.control.abtest import Result, TrackSample, analyse, wilson, z_value
from thermostat.control.rollout import ABORT, PROMOTE, RolloutInput, advance, analysis_due, rollout_verdict

RULES = Rollout.model_validate({"steps": [25, 50], "analysis": {"intervalSeconds": 60, "minRequests": 100}})
PODS = ("chat-a", "chat-b", "chat-c", "chat-d")
BUDGET = 1.0


def sample(
    requests: float, late: float = 0.0, *, t: float = 0.6, kl: float = 0.005, tokens: float = 20000
) -> TrackSample:
    """A track whose per-token KL has mean ``kl`` and a spread of the same size."""
    return TrackSample(requests=requests, within_slo=requests - late, errors=0.0, shadow_tokens=tokens,
                       shadow_kl_nats=kl * tokens, shadow_kl_sq_nats=2 * kl * kl * tokens, temperature=t)  # fmt: skip


STABLE = sample(1000, 10, t=1.0, tokens=0)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (97, 100), (500, 1000), (1000, 1000)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ours = wilson(k, n, z_value(0.95))
    theirs = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours.low == pytest.approx(theirs.low, abs=1e-9)
    assert ours.high == pytest.approx(theirs.high, abs=1e-9)


def test_a_good_canary_passes_and_a_lossy_one_fails() -> None:
    assert analyse(STABLE, sample(1000, 12), RULES.analysis, BUDGET).result == Result.PASSED
    lossy = analyse(STABLE, sample(1000, 12, kl=0.05), RULES.analysis, BUDGET)
    assert lossy.result == Result.FAILED
    assert "quality loss" in lossy.message


def test_a_late_canary_fails_on_the_slo_share() -> None:
    late = analyse(STABLE, sample(1000, 200), RULES.analysis, BUDGET)
    assert late.result == Result.FAILED
    assert "within SLO" in late.message


def test_too_little_traffic_or_too_few_shadow_tokens_is_inconclusive() -> None:
    # Even a canary that loses badly is not failed on 50 requests: too little evidence either way.
    assert analyse(STABLE, sample(50, 0, kl=0.05), RULES.analysis, BUDGET).result == Result.INCONCLUSIVE
    few = analyse(STABLE, sample(1000, 10, tokens=500), RULES.analysis, BUDGET)
    assert few.result == Result.INCONCLUSIVE
    assert "shadow tokens" in few.message


def inp(now: float, *, law: float = 0.6, op: float = 0.6, **kw: object) -> RolloutInput:
    return RolloutInput(now=now, law_temperature=law, operating_temperature=op, in_force=1.0, pods=PODS, **kw)  # type: ignore[arg-type]


def started() -> RolloutStatus:
    step = advance(None, RULES, inp(1000.0))
    assert step.status is not None
    return step.status


def test_a_fall_larger_than_the_step_starts_a_canary_and_stable_keeps_its_temperature() -> None:
    step = advance(None, RULES, inp(1000.0))
    assert step.status is not None
    assert step.status.phase == RolloutPhase.PROGRESSING
    assert step.stable_temperature == 1.0
    assert step.canary_temperature == 0.6
    assert step.canary_pods == ("chat-a",)  # 25% of 4 pods
    assert [n.reason for n in step.notes] == ["RolloutStarted"]


def test_a_small_fall_or_a_rise_is_not_staged() -> None:
    small = advance(None, RULES, inp(1000.0, law=0.95, op=0.95))
    assert small.status is None
    assert small.stable_temperature == 0.95
    assert small.canary_temperature is None


def test_a_harmful_candidate_is_rolled_back_at_the_first_analysis_and_not_retried() -> None:
    state = started()
    assert not analysis_due(state, RULES, 1059.0)
    assert analysis_due(state, RULES, 1060.0)
    failed = analyse(STABLE, sample(1000, 10, kl=0.05), RULES.analysis, BUDGET)
    step = advance(state, RULES, inp(1060.0, analysis=failed))
    assert step.status is not None
    assert step.status.phase == RolloutPhase.ROLLED_BACK
    assert step.stable_temperature == 1.0
    assert step.canary_temperature is None
    assert step.canary_pods == ()
    assert step.notes[0].reason == "RolloutRolledBack"
    assert step.notes[0].warning
    again = advance(step.status, RULES, inp(1075.0))
    assert again.status is not None
    assert again.status.phase == RolloutPhase.ROLLED_BACK
    assert again.stable_temperature == 1.0


def test_a_good_candidate_is_promoted_step_by_step() -> None:
    state, shares = started(), []
    passed = analyse(STABLE, sample(1000, 10), RULES.analysis, BUDGET)
    now = 1000.0
    for _ in range(2):
        now += 60.0
        step = advance(state, RULES, inp(now, analysis=passed))
        assert step.status is not None
        state = step.status
        shares.append((state.phase, len(step.canary_pods), step.stable_temperature))
    assert shares == [(RolloutPhase.PROGRESSING, 2, 1.0), (RolloutPhase.PROMOTED, 0, 0.6)]
    assert state.stable_temperature == 0.6
    assert [h.action for h in state.history] == ["Started", "Advanced", "Promoted"]


def test_inconclusive_analyses_never_promote_and_pause_past_the_limit() -> None:
    state = started()
    low = analyse(STABLE, sample(20), RULES.analysis, BUDGET)
    now = 1000.0
    for _ in range(RULES.analysis.inconclusive_limit + 1):
        now += 60.0
        step = advance(state, RULES, inp(now, analysis=low))
        assert step.status is not None
        state = step.status
        assert state.phase != RolloutPhase.PROMOTED
        assert step.canary_temperature == 0.6
    assert state.phase == RolloutPhase.PAUSED
    assert rollout_verdict(state).reason == "PausedInconclusive"
    assert not analysis_due(state, RULES, now + 600)  # a person decides now


def test_a_metrics_outage_pauses_then_rolls_back_past_the_error_limit() -> None:
    state = started()
    now = 1060.0
    step = advance(state, RULES, inp(now, metrics_missing="Prometheus unreachable"))
    assert step.status is not None
    assert step.status.phase == RolloutPhase.PAUSED
    assert step.stable_temperature == 1.0
    assert step.canary_temperature == 0.6
    assert analysis_due(step.status, RULES, now + 15)  # retried every run
    state = step.status
    paused_notes = len(step.notes)
    for _ in range(RULES.analysis.consecutive_error_limit - 1):
        now += 15
        step = advance(state, RULES, inp(now, metrics_missing="Prometheus unreachable"))
        assert step.status is not None
        state = step.status
        paused_notes += len(step.notes)
        assert state.phase == RolloutPhase.PAUSED
    assert paused_notes == 1  # said once on entering the pause, not at every run
    assert [h.action for h in state.history] == ["Started", "Paused"]
    step = advance(state, RULES, inp(now + 15, metrics_missing="Prometheus unreachable"))
    assert step.status is not None
    assert step.status.phase == RolloutPhase.ROLLED_BACK


def test_a_manual_abort_restores_stable_at_once_and_a_manual_promote_promotes() -> None:
    aborted = advance(started(), RULES, inp(1010.0, command=ABORT))
    assert aborted.status is not None
    assert aborted.status.phase == RolloutPhase.ROLLED_BACK
    assert aborted.stable_temperature == 1.0
    assert aborted.canary_temperature is None
    assert aborted.command_done
    promoted = advance(started(), RULES, inp(1010.0, command=PROMOTE))
    assert promoted.status is not None
    assert promoted.status.phase == RolloutPhase.PROMOTED
    assert promoted.stable_temperature == 0.6
    assert promoted.command_done


def test_a_burst_during_a_rollout_lowers_every_pod() -> None:
    step = advance(started(), RULES, inp(1015.0, law=0.4, op=0.6))
    assert step.stable_temperature == 0.4
    assert step.canary_temperature == 0.4
    back = advance(step.status, RULES, inp(1030.0, law=0.6, op=0.6))
    assert back.stable_temperature == 1.0
    assert back.canary_temperature == 0.6


def test_one_pod_cannot_carry_a_canary_beside_stable() -> None:
    one = RolloutInput(now=1000.0, law_temperature=0.6, operating_temperature=0.6, in_force=1.0, pods=("chat-a",))
    step = advance(None, RULES, one)
    assert step.status is not None
    assert step.status.phase == RolloutPhase.PAUSED
    assert step.canary_pods == ()
    assert step.stable_temperature == 1.0
