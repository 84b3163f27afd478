"""Every RoutedModel condition type and reason, declared once, and the law's verdicts built from them.

Types are members of ``ConditionType`` (listed in status in that order); reasons are CamelCase
constants, grouped by the type they explain, each with a line saying when it applies. The law
computes ``SLOMet``, ``WithinBudget``, ``MetricsAvailable``, ``Feasible``,
``QualityWithinBudget`` and ``CapacityKnown``; the operator computes ``Ready``, ``Conflict`` and ``Rollout``
(``thermostat.status.conditions``), from the same names.
"""

from __future__ import annotations

from enum import StrEnum

from thermostat.control.types import Verdict

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


class ConditionType(StrEnum):
    """Condition types, in the order status lists them."""

    READY = "Ready"  # summary: the model is served and the operator is in control
    SLO_MET = "SLOMet"  # the latency quantile is within the SLO (from the law)
    WITHIN_BUDGET = "WithinBudget"  # power and energy are within the budget (from the law)
    METRICS_AVAILABLE = "MetricsAvailable"  # every signal the law needs was fresh (from the law)
    FEASIBLE = "Feasible"  # SLO, budget and quality floor can all hold (from the law)
    QUALITY_WITHIN_BUDGET = "QualityWithinBudget"  # the quality loss in force is within the budget (from the law)
    CAPACITY_KNOWN = "CapacityKnown"  # the law knows a replica's capacity: profile, or learned online (from the law)
    CONFLICT = "Conflict"  # someone else sets the Deployment's replicas
    ROLLOUT = "Rollout"  # a staged operating point is being A/B-tested (only with spec.rollout)


# Ready
SERVING = "Serving"  # objects applied and at least one replica ready
WAITING_FOR_REPLICAS = "WaitingForReplicas"  # objects applied, no replica ready yet
INVALID_SPEC = "InvalidSpec"  # the spec passed the schema but not the operator's deeper checks
TARGET_NOT_FOUND = "TargetNotFound"  # spec.targetRef names a Deployment that does not exist
APPLY_FAILED = "ApplyFailed"  # the API server refused a write (message: the API's own words)
# Conflict
OTHER_SCALER = "OtherScaler"  # an HPA or KEDA ScaledObject targets the same Deployment
REPLICAS_OVERRIDDEN = "ReplicasOverridden"  # replicas changed outside Thermostat twice in a row
NO_CONFLICT = "NoOtherScaler"  # the operator is the only one setting replicas
SCALERS_UNKNOWN = "ScalersUnknown"  # HPAs or ScaledObjects could not be listed (403): the operator cannot tell
# Rollout (True while canary pods serve a candidate)
ROLLOUT_PROGRESSING = "Progressing"  # a canary step is being analysed
ROLLOUT_PAUSED_METRICS = "PausedMetricsUnavailable"  # the A/B figures are missing: no analysis counts
ROLLOUT_PAUSED_INCONCLUSIVE = "PausedInconclusive"  # over inconclusiveLimit: a person promotes or aborts
ROLLOUT_PAUSED_REPLICAS = "PausedTooFewReplicas"  # fewer than two pods: no canary beside a stable pod
ROLLOUT_PROMOTED = "Promoted"  # the candidate passed every step and serves on every pod
ROLLOUT_ROLLED_BACK = "RolledBack"  # the candidate failed (or was aborted): every pod serves stable
ROLLOUT_IDLE = "NoRollout"  # nothing staged: every pod serves the same temperature
# SLOMet
LATENCY_WITHIN_TARGET = "LatencyWithinTarget"  # observed quantile <= target
LATENCY_ABOVE_TARGET = "LatencyAboveTarget"  # observed quantile > target
LATENCY_UNKNOWN = "LatencyUnknown"  # the latency signal is missing or stale
IDLE = "Idle"  # no request arrived in the window: a known zero load, nothing to be late
# WithinBudget
NO_BUDGET = "NoBudget"  # the spec sets no budget
WITHIN_BUDGET = "WithinBudget"  # observed power and energy within every limit
OVER_BUDGET = "OverBudget"  # a limit is exceeded (message names which)
POWER_UNKNOWN = "PowerUnknown"  # a budget is set but power is missing or stale
# MetricsAvailable
METRICS_FRESH = "MetricsFresh"  # every signal the law needs is present and fresh
METRICS_MISSING = "MetricsMissing"  # a needed signal is absent (message names it)
METRICS_STALE = "MetricsStale"  # a needed signal is older than metricsMaxAgeSeconds
# back after a gap, but a zero load over less than a window since: not yet known idle (held)
METRICS_WINDOW_INCOMPLETE = "WindowIncomplete"
DIRECT_SCRAPE = "DirectScrape"  # Prometheus failed: the signals are read from the pods' /metrics
# Feasible
FEASIBLE = "Feasible"  # SLO, budget, quality floor and replica bounds can all hold
BUDGET_YIELDS_TO_SLO = "BudgetYieldsToSLO"  # both cannot hold; priority SLO: the budget is exceeded
SLO_YIELDS_TO_BUDGET = "SLOYieldsToBudget"  # both cannot hold; priority Budget: the SLO is missed
SLO_UNREACHABLE = "SLOUnreachable"  # even max replicas at the quality floor miss the SLO
DECISION_HELD = "DecisionHeld"  # metrics unavailable: feasibility not evaluated
# QualityWithinBudget (condition type QUALITY_WITHIN_BUDGET)
EXACT_SERVING = "ExactServing"  # the temperature in force is 1: output identical to the exact model
MEASURED_WITHIN_BUDGET = "MeasuredWithinBudget"  # shadow-measured loss <= maxQualityLossPercent
MEASURED_OVER_BUDGET = "MeasuredOverBudget"  # shadow-measured loss over budget at the operating point
PROFILE_TRUSTED = "ProfileTrusted"  # too few shadow tokens in the window: the profile's loss is used
BELOW_OPERATING_POINT = "BelowOperatingPoint"  # the SLO (or the power budget) holds T below the operating point
# CapacityKnown
CAPACITY_FROM_PROFILE = "FromProfile"  # the runtime's routing profile sizes a replica
CAPACITY_LEARNING = "LearningOnline"  # no profile, too little evidence yet: no scale-down
CAPACITY_LEARNED = "LearnedOnline"  # no profile: capacity learned from enough observations


def verdict(status: str, reason: str, message: str) -> Verdict:
    """One condition as the law reports it."""
    return Verdict(status=status, reason=reason, message=message)


def slo_verdict(latency_s: float | None, target_s: float, quantile: float, *, idle: bool = False) -> Verdict:
    """SLOMet from the observed latency quantile (``idle``: no request in the window, nothing to miss)."""
    name = f"p{round(quantile * 100):d}"
    if idle:
        return verdict(TRUE, IDLE, "no request in the window: nothing to be late")
    if latency_s is None:
        return verdict(UNKNOWN, LATENCY_UNKNOWN, f"{name} latency is unknown (missing or stale)")
    if latency_s <= target_s:
        return verdict(TRUE, LATENCY_WITHIN_TARGET, f"{name} {latency_s:.2f}s <= SLO {target_s:.2f}s")
    return verdict(FALSE, LATENCY_ABOVE_TARGET, f"{name} {latency_s:.2f}s > SLO {target_s:.2f}s")


def metrics_verdict(missing: dict[str, str]) -> Verdict:
    """MetricsAvailable from the needed signals that are missing, with why."""
    if not missing:
        return verdict(TRUE, METRICS_FRESH, "latency and request rate are fresh")
    listed = ", ".join(f"{name} ({why})" for name, why in sorted(missing.items()))
    stale = all(why == "stale" or why.startswith("Stale") for why in missing.values())
    refilling = all(why.startswith(METRICS_WINDOW_INCOMPLETE) for why in missing.values())
    reason = METRICS_STALE if stale else METRICS_WINDOW_INCOMPLETE if refilling else METRICS_MISSING
    return verdict(FALSE, reason, f"unavailable: {listed}")


def quality_verdict(
    *,
    temperature: float,
    t_op: float,
    budget_percent: float,
    measured_percent: float | None,
    expected_percent: float,
    shadow_tokens: float,
    min_shadow_tokens: float,
) -> Verdict:
    """QualityWithinBudget for the temperature in force over the last window."""
    if temperature >= 1.0 - 1e-9:
        return verdict(TRUE, EXACT_SERVING, "routing temperature 1: exact output, no quality loss")
    if measured_percent is not None:
        seen = f"shadow-measured loss {measured_percent:.2f}% ({shadow_tokens:.0f} tokens) at T {temperature:.2f}"
        loss = measured_percent
    else:
        seen = (
            f"too few shadow tokens ({shadow_tokens:.0f} in the window, need {min_shadow_tokens:.0f}): "
            f"trusting the profile, {expected_percent:.2f}% at T {temperature:.2f}"
        )
        loss = expected_percent
    if loss <= budget_percent + 1e-9:
        reason = MEASURED_WITHIN_BUDGET if measured_percent is not None else PROFILE_TRUSTED
        return verdict(TRUE, reason, f"{seen} <= budget {budget_percent:.2f}%")
    if temperature < t_op - 1e-9:
        return verdict(
            FALSE,
            BELOW_OPERATING_POINT,
            f"{seen} > budget {budget_percent:.2f}% while the SLO or the power budget holds T below the "
            f"operating point {t_op:.2f}; it returns there once replicas carry the load",
        )
    reason = MEASURED_OVER_BUDGET if measured_percent is not None else PROFILE_TRUSTED
    return verdict(FALSE, reason, f"{seen} > budget {budget_percent:.2f}%: operating point now T {t_op:.2f}")
