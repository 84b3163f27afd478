"""The power budget: the power cap and the energy-per-request/per-token limits as one power limit at
the current load, and the WithinBudget verdict from what was observed."""

from __future__ import annotations

from thermostat.api.spec import RoutedModelSpec
from thermostat.control import conditions as c
from thermostat.control.signals import load_value, reading_value
from thermostat.control.types import Observation, Verdict


def power_limit_w(spec: RoutedModelSpec, demand: float, tokens_per_request: float) -> float | None:
    """The tightest power the budget allows at this load, with the reserve kept; None without budget."""
    budget = spec.budget
    if budget is None:
        return None
    limits = []
    if budget.power_watts is not None:
        limits.append(budget.power_watts)
    if budget.energy_joules_per_request is not None:
        limits.append(budget.energy_joules_per_request * demand)
    if budget.energy_joules_per_1k_tokens is not None:
        limits.append(budget.energy_joules_per_1k_tokens * demand * tokens_per_request / 1000.0)
    return min(limits) * (1.0 - budget.reserve_fraction) if limits else None


def budget_verdict(obs: Observation, spec: RoutedModelSpec) -> Verdict:
    """WithinBudget from the observed power and energy rate."""
    budget = spec.budget
    if budget is None:
        return c.verdict(c.TRUE, c.NO_BUDGET, "no budget set")
    power = reading_value(obs.power_w)
    if power is None:
        return c.verdict(c.UNKNOWN, c.POWER_UNKNOWN, "power is missing or stale")
    estimated = " (estimated)" if obs.power_source == "estimate" else ""
    over: list[str] = []
    if budget.power_watts is not None and power > budget.power_watts:
        over.append(f"power {power:.0f} W{estimated} > {budget.power_watts:.0f} W")
    rate, tokens = load_value(obs.request_rate), load_value(obs.token_rate)
    energy_rate = reading_value(obs.energy_rate_w)
    energy_rate = power if energy_rate is None else energy_rate
    if budget.energy_joules_per_request is not None and rate:
        per_request = energy_rate / rate
        if per_request > budget.energy_joules_per_request:
            over.append(f"{per_request:.0f} J/request > {budget.energy_joules_per_request:.0f}")
    if budget.energy_joules_per_1k_tokens is not None and tokens:
        per_1k = 1000.0 * energy_rate / tokens
        if per_1k > budget.energy_joules_per_1k_tokens:
            over.append(f"{per_1k:.0f} J/1k tokens > {budget.energy_joules_per_1k_tokens:.0f}")
    if over:
        return c.verdict(c.FALSE, c.OVER_BUDGET, "; ".join(over))
    return c.verdict(c.TRUE, c.WITHIN_BUDGET, f"power {power:.0f} W{estimated} within budget")
