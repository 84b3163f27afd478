"""The fast path: the routing temperature for the replicas ready now.

The highest temperature up to the operating point (rises limited per period) whose predicted latency
meets the margined target and whose power meets the budget; below the operating point only while the
SLO is at risk. The observation has the last word: an excursion lowers the temperature at once (at
least one profiled step, to wherever the model asks) and forbids a rise; during a pod's warm-up an
excursion moves it one step only; a model that puts a lone request over the target while the
observed quantile meets it is not followed down, nor is the model alone at a quiet load.
"""

from __future__ import annotations

from thermostat.api.spec import RoutedModelSpec
from thermostat.control.bounds import Bounds
from thermostat.control.evidence import Evidence
from thermostat.control.model import ResponseModel
from thermostat.control.replicas import Plan

MIN_DROP = 0.05  # an excursion's step down is at least this much (a profiled point just below is no answer)


def choose_temperature(
    model: ResponseModel,
    seen: Evidence,
    *,
    bounds: Bounds,
    target_s: float,
    limit_w: float | None,
    spec: RoutedModelSpec,
    plan: Plan,
) -> float:
    """The temperature to apply now (see the module docstring)."""
    current = min(max(seen.temperature, bounds.t_lo), bounds.t_hi)
    if seen.ready <= 0:
        return current
    ceiling = current if seen.excursion else min(bounds.t_op, current + spec.behavior.max_temperature_step_up)
    grid = {t for t in model.profile.temperatures if bounds.t_lo <= t <= ceiling} | {bounds.t_lo, ceiling}
    ordered = sorted(grid, reverse=True)
    slo_ok, budget_ok = meeting(model, ordered, seen, target_s=target_s, limit_w=limit_w)
    both = [t for t in slo_ok if t in budget_ok]
    if plan.lone_request and not seen.excursion:
        # The model contradicts what is observed at this very load: do not act on it, hold (within budget).
        affordable = limit_w is None or model.total_power_w(seen.demand, current, seen.ready, seen.starting) <= limit_w
        chosen = current if affordable else next(iter(budget_ok), bounds.t_lo)
    elif both:
        chosen = both[0]
    else:
        preferred = slo_ok if spec.budget is None or spec.budget.priority == "SLO" else budget_ok
        chosen = preferred[0] if preferred else bounds.t_lo
    if seen.quiet and not seen.excursion:
        chosen = max(chosen, min(current, bounds.t_op))  # no SLO risk seen: not below the operating point
    if seen.excursion:
        one_step = max((t for t in grid if t <= current - MIN_DROP + 1e-9), default=bounds.t_lo)
        chosen = one_step if seen.warming else min(chosen, one_step)
    return chosen


def meeting(
    model: ResponseModel,
    temperatures: list[float],
    seen: Evidence,
    *,
    target_s: float,
    limit_w: float | None,
) -> tuple[list[float], list[float]]:
    """Of ``temperatures`` (order kept), those the model says meet the SLO, and those within the budget."""
    ready, demand = max(seen.ready, 1), seen.demand
    slo_ok = [t for t in temperatures if model.latency_s(demand / ready, t) <= target_s]
    budget_ok = [
        t for t in temperatures if limit_w is None or model.total_power_w(demand, t, ready, seen.starting) <= limit_w
    ]
    return slo_ok, budget_ok
