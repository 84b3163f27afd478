"""RoutedModel conditions, by the metav1.Condition conventions.

Types and reasons are declared once, in ``thermostat.control.conditions``. ``set_condition``
keeps ``lastTransitionTime`` unless the status flips, so a condition that stays True for a day says
so; ``ready_verdict`` computes the ``Ready`` summary from what the operator knows about the objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from thermostat.api.status import Condition, ConditionStatus
from thermostat.control.conditions import (
    APPLY_FAILED,
    INVALID_SPEC,
    NO_CONFLICT,
    OTHER_SCALER,
    SCALERS_UNKNOWN,
    SERVING,
    TARGET_NOT_FOUND,
    WAITING_FOR_REPLICAS,
    ConditionType,
)
from thermostat.control.types import Verdict

CONDITION_ORDER: tuple[str, ...] = tuple(ConditionType)

TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def set_condition(
    conditions: Iterable[Condition], type_: str, verdict: Verdict, *, now: str, generation: int | None
) -> list[Condition]:
    """The conditions with ``type_`` set to ``verdict``; the transition time moves only on a flip."""
    kept = [c for c in conditions if c.type != type_]
    previous = next((c for c in conditions if c.type == type_), None)
    status = ConditionStatus(verdict.status)
    flipped = previous is None or previous.status != status
    updated = Condition(
        type=type_,
        status=status,
        reason=verdict.reason,
        message=verdict.message,
        last_transition_time=now if flipped or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )
    return sort_conditions([*kept, updated])


def set_conditions(
    conditions: Iterable[Condition], verdicts: Mapping[str, Verdict], *, now: str, generation: int | None
) -> list[Condition]:
    """Apply several verdicts at once (see ``set_condition``)."""
    result = list(conditions)
    for type_, verdict in verdicts.items():
        result = set_condition(result, type_, verdict, now=now, generation=generation)
    return result


def sort_conditions(conditions: Iterable[Condition]) -> list[Condition]:
    """Known types in their documented order, then any others alphabetically."""
    rank = {name: index for index, name in enumerate(CONDITION_ORDER)}
    return sorted(conditions, key=lambda c: (rank.get(c.type, len(rank)), c.type))


def find_condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    """The condition of that type, if any."""
    return next((c for c in conditions if c.type == type_), None)


@dataclass(frozen=True)
class Health:
    """What the operator knows about a RoutedModel's objects, for the Ready summary."""

    invalid_spec: str | None = None  # what to fix, when the deeper checks failed
    target_missing: str | None = None  # the missing targetRef Deployment
    apply_error: str | None = None  # the API server's refusal
    ready_replicas: int = 0
    replicas: int = 0
    conflict: str | None = None  # who else scales the Deployment
    metrics_problem: str | None = None  # why metrics are unavailable, if they are


def ready_verdict(health: Health) -> Verdict:
    """The Ready summary: False for a bad spec, a missing target, a refused object or no ready pod."""
    if health.invalid_spec:
        return Verdict(FALSE, INVALID_SPEC, health.invalid_spec)
    if health.target_missing:
        return Verdict(
            FALSE,
            TARGET_NOT_FOUND,
            f"Deployment {health.target_missing} not found: create it or fix spec.targetRef.name",
        )
    if health.apply_error:
        return Verdict(FALSE, APPLY_FAILED, health.apply_error)
    if health.ready_replicas < 1:
        return Verdict(FALSE, WAITING_FOR_REPLICAS, f"0 of {health.replicas} replicas ready yet")
    notes = [f"{health.ready_replicas} of {health.replicas} replicas ready"]
    if health.conflict:
        notes.append(f"replicas left alone: {health.conflict}")
    if health.metrics_problem:
        notes.append(f"holding: {health.metrics_problem}")
    return Verdict(TRUE, SERVING, "; ".join(notes))


def conflict_verdict(conflict: str | None, *, reason: str = OTHER_SCALER, unknown: str | None = None) -> Verdict:
    """The Conflict condition: True names the other scaler and what the operator stopped doing;
    Unknown when other scalers could not be looked for (``unknown`` says why)."""
    if conflict:
        return Verdict(
            TRUE,
            reason,
            f"{conflict}; Thermostat makes no replica changes until it is gone (temperature still applies)",
        )
    if unknown:
        return Verdict(
            UNKNOWN,
            SCALERS_UNKNOWN,
            f"{unknown}; replicas are still set, and a scaler undoing them is detected as ReplicasOverridden",
        )
    return Verdict(FALSE, NO_CONFLICT, "no other scaler drives the Deployment")
