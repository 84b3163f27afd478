"""The law's verdicts: condition reasons (CamelCase constants) and how each is built."""

from __future__ import annotations

from thermostat.control.types import Verdict

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# SLOMet
LATENCY_WITHIN_TARGET = "LatencyWithinTarget"  # observed quantile <= target
LATENCY_ABOVE_TARGET = "LatencyAboveTarget"  # observed quantile > target
LATENCY_UNKNOWN = "LatencyUnknown"  # the latency signal is missing or stale
# WithinBudget
NO_BUDGET = "NoBudget"  # the spec sets no budget
WITHIN_BUDGET = "WithinBudget"  # observed power and energy within every limit
OVER_BUDGET = "OverBudget"  # a limit is exceeded (message names which)
POWER_UNKNOWN = "PowerUnknown"  # a budget is set but power is missing or stale
# MetricsAvailable
METRICS_FRESH = "MetricsFresh"  # every signal the law needs is present and fresh
METRICS_MISSING = "MetricsMissing"  # a needed signal is absent (message names it)
METRICS_STALE = "MetricsStale"  # a needed signal is older than metricsMaxAgeSeconds
# Feasible
FEASIBLE = "Feasible"  # SLO, budget, quality floor and replica bounds can all hold
BUDGET_YIELDS_TO_SLO = "BudgetYieldsToSLO"  # both cannot hold; priority SLO: the budget is exceeded
SLO_YIELDS_TO_BUDGET = "SLOYieldsToBudget"  # both cannot hold; priority Budget: the SLO is missed
SLO_UNREACHABLE = "SLOUnreachable"  # even max replicas at the quality floor miss the SLO
DECISION_HELD = "DecisionHeld"  # metrics unavailable: feasibility not evaluated


def verdict(status: str, reason: str, message: str) -> Verdict:
    """One condition as the law reports it."""
    return Verdict(status=status, reason=reason, message=message)


def slo_verdict(latency_s: float | None, target_s: float, quantile: float) -> Verdict:
    """SLOMet from the observed latency quantile."""
    name = f"p{round(quantile * 100):d}"
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
    reason = METRICS_STALE if all(why == "stale" for why in missing.values()) else METRICS_MISSING
    return verdict(FALSE, reason, f"unavailable: {listed}")
