"""The decision audit: one record per control run, and what the savings ledger accrues from it.

``decision_record`` is the record both trails share: status keeps the newest ones, folded
(``history``), and the operator's log gets every one as a JSON line (docs/audit.md). Staged-rollout
steps use the same record with ``kind: rollout`` (``rollout_records``): one per step a run took.
"""

from __future__ import annotations

from thermostat.api.spec import Mode, RoutedModelSpec
from thermostat.api.status import (
    DecisionKind,
    DecisionOutcome,
    DecisionRecord,
    DecisionSeen,
    RolloutStatus,
    RolloutStepRecord,
    Settings,
)
from thermostat.control.rules import same_temperature
from thermostat.control.signals import load_value, reading_value
from thermostat.status.outcome import RunOutcome
from thermostat.status.savings import Accrual

ESTIMATE = "estimate"


def decision_outcome(run: RunOutcome, spec: RoutedModelSpec) -> DecisionOutcome:
    """What became of the run's decision."""
    decision = run.decision
    assert decision is not None  # only runs that decided have an outcome
    if run.health.apply_error:
        return DecisionOutcome.FAILED
    if decision.held:
        return DecisionOutcome.HELD
    if run.applied:
        before = run.before or Settings()
        same = before.replicas == decision.replicas and before.routing_temperature is not None
        same = same and same_temperature(before.routing_temperature or 0.0, decision.routing_temperature)
        return DecisionOutcome.UNCHANGED if same else DecisionOutcome.APPLIED
    return DecisionOutcome.RECOMMENDED if spec.mode == Mode.RECOMMEND else DecisionOutcome.NOT_APPLIED


def decision_record(run: RunOutcome, spec: RoutedModelSpec, *, time: str) -> DecisionRecord | None:
    """The audit record of the run's decision (None when it decided nothing)."""
    decision = run.decision
    if decision is None:
        return None
    seen = None
    if run.observation is not None:
        obs = run.observation
        seen = DecisionSeen(
            latency_seconds=reading_value(obs.latency_s),
            request_rate=load_value(obs.request_rate),
            power_watts=reading_value(obs.power_w),
            missing=sorted(f"{name}: {why}" for name, why in obs.missing_signals().items()),
        )
    before = run.before
    return DecisionRecord(
        time=time,
        routing_temperature=decision.routing_temperature,
        replicas=decision.replicas,
        reason=decision.reason,
        applied=run.applied,
        rule=decision.rule,
        outcome=decision_outcome(run, spec),
        before=Settings(routing_temperature=before.routing_temperature, replicas=before.replicas) if before else None,
        seen=seen,
    )


def rollout_records(
    previous: RolloutStatus | None, rollout: RolloutStatus | None, *, replicas: int
) -> list[DecisionRecord]:
    """The rollout steps this run took (entries of ``rollout.history`` that ``previous`` lacks) as
    decision records of kind ``rollout``: the settings are the candidate's, ``before`` the stable point
    the step started from, ``rule`` the step's action."""
    if rollout is None:
        return []
    known = {_step_key(step) for step in previous.history} if previous else set()
    stable = previous.stable_temperature if previous else rollout.stable_temperature
    candidate = rollout.candidate_temperature
    return [
        DecisionRecord(
            time=step.time,
            kind=DecisionKind.ROLLOUT,
            routing_temperature=candidate if candidate is not None else rollout.stable_temperature,
            replicas=replicas,
            reason=step.reason,
            applied=True,
            rule=step.action,
            outcome=DecisionOutcome.APPLIED,
            before=Settings(routing_temperature=stable, replicas=replicas),
        )
        for step in rollout.history
        if _step_key(step) not in known
    ]


def _step_key(step: RolloutStepRecord) -> tuple[str, str, int, str]:
    return (step.time, step.action, step.canary_percent, step.reason)


def ledger_accrual(run: RunOutcome) -> Accrual | None:
    """The rates the ledger accrues for this run (None when it saw nothing)."""
    obs, decision = run.observation, run.decision
    if obs is None or decision is None:
        return None
    energy = reading_value(obs.energy_rate_w)
    if energy is None:
        energy = reading_value(obs.power_w)
    exact = decision.exact
    return Accrual(
        energy_rate_w=energy,
        exact_power_w=None if exact is None or decision.held else exact.power_w,
        token_rate=load_value(obs.token_rate) or 0.0,
        loss_percent=exact.loss_percent_in_force if exact else 0.0,
        estimated=obs.power_source == ESTIMATE,
    )
