"""The rule that fired: one CamelCase name per decision, for the audit trail (docs/audit.md).

A decision may move both knobs; its rule is the one that drove it, first match in this order:
metrics unavailable, the fast path (an excursion lowers the temperature), the budget, a move down to
the operating point, a predicted miss, replicas up, replicas down, the temperature rising back, a
scale-down that a guard stopped, then idle or steady. The decision's ``reason`` keeps every detail
in words; the rule is what a reader or a query groups by.
"""

from __future__ import annotations

from dataclasses import dataclass

METRICS_HOLD = "MetricsUnavailableHold"  # a needed signal is missing or stale: the knobs are kept
METRICS_REPLICAS = "MetricsUnavailableReplicas"  # missing metrics: onMetricsUnavailable raised the replicas
SLO_EXCURSION = "SLOExcursion"  # observed latency over the excursion threshold: temperature dropped at once
BUDGET_LIMIT = "BudgetLimit"  # the power budget lowered the temperature or the replicas
OPERATING_POINT = "OperatingPoint"  # lowered to the steady operating point (at start, or the quality budget moved)
PREDICTED_MISS = "PredictedMiss"  # the model predicts a miss at the temperature in force: temperature dropped
SCALE_UP = "ScaleUp"  # the slow path wants more replicas (after its confirmations)
SCALE_DOWN = "ScaleDown"  # fewer replicas carry the load (after stabilization and the observation's consent)
TEMPERATURE_RISE = "TemperatureRecovery"  # the temperature rises back toward the operating point
SCALE_DOWN_HELD = "ScaleDownHeld"  # fewer replicas would do, but a guard keeps them (the reason names it)
IDLE = "Idle"  # no request in the window: nothing to change
STEADY = "Steady"  # settings already where the law wants them

# The routing ConfigMap carries four decimals (thermostat.render): finer differences are no change.
TEMPERATURE_DECIMALS = 4


def same_temperature(a: float, b: float) -> bool:
    """Whether two temperatures are the same setting once written to the ConfigMap."""
    return round(a, TEMPERATURE_DECIMALS) == round(b, TEMPERATURE_DECIMALS)


# Every rule, for documentation and validation of recorded trails.
RULES = (
    METRICS_HOLD, METRICS_REPLICAS, SLO_EXCURSION, BUDGET_LIMIT, OPERATING_POINT, PREDICTED_MISS, SCALE_UP, SCALE_DOWN,
    TEMPERATURE_RISE, SCALE_DOWN_HELD, IDLE, STEADY,
)  # fmt: skip


@dataclass(frozen=True)
class Move:
    """What a decision changes and under which circumstances."""

    temperature_before: float
    temperature_after: float
    replicas_before: int
    replicas_after: int
    operating_temperature: float = 1.0
    excursion: bool = False
    budget_bound: bool = False
    idle: bool = False
    guarded: bool = False  # a scale-down guard or a stabilization window kept replicas the plan would drop


def rule_for(move: Move) -> str:
    """The rule that drove ``move`` (see the module docstring for the order)."""
    moved = not same_temperature(move.temperature_after, move.temperature_before)
    lowered = moved and move.temperature_after < move.temperature_before
    raised = moved and move.temperature_after > move.temperature_before
    if lowered and move.excursion:
        return SLO_EXCURSION
    if move.budget_bound and (lowered or move.replicas_after < move.replicas_before):
        return BUDGET_LIMIT
    if lowered and same_temperature(move.temperature_after, move.operating_temperature):
        return OPERATING_POINT
    if lowered:
        return PREDICTED_MISS
    if move.replicas_after > move.replicas_before:
        return SCALE_UP
    if move.replicas_after < move.replicas_before:
        return SCALE_DOWN
    if raised:
        return TEMPERATURE_RISE
    if move.guarded:
        return SCALE_DOWN_HELD
    return IDLE if move.idle else STEADY


def held_rule(replicas_before: int, replicas_after: int) -> str:
    """The rule of a decision taken while metrics are unavailable."""
    return METRICS_REPLICAS if replicas_after > replicas_before else METRICS_HOLD
