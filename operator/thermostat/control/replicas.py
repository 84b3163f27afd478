"""The slow path: how many replicas, within the budget, stabilized like Kubernetes' HPA.

``plan_replicas`` sizes from the response model (the fewest replicas carrying the load at the operating
temperature with a burst reserve down to the floor, budget checked); ``heed_observation`` lets the
observed latency overrule that plan; ``stabilize`` applies the HPA-style windows and step limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from thermostat.api.spec import RoutedModelSpec
from thermostat.control import conditions as c
from thermostat.control.bounds import Bounds
from thermostat.control.evidence import Evidence
from thermostat.control.memory import LawMemory
from thermostat.control.model import ResponseModel
from thermostat.control.types import Verdict

# A scale-up needs this many earlier decisions in a row that wanted it too: the first periods of a burst
# are the temperature's (DESIGN §4). Tuned on the first half of the Azure trace (docs/BENCHMARKS.md).
SCALE_UP_CONFIRMATIONS = 3
DOWNSCALE_HYSTERESIS = 0.95  # plan scale-downs for 95% of the (margined) target (tuned: first half of the Azure trace)


@dataclass(frozen=True)
class Plan:
    """The replicas the slow path wants, whether everything can hold, and why."""

    replicas: int
    feasible: Verdict
    why: str
    lone_request: bool = False  # the model puts even a lone request over the target: replicas cannot help


def plan_replicas(
    model: ResponseModel,
    demand: float,
    *,
    bounds: Bounds,
    target_s: float,
    limit_w: float | None,
    spec: RoutedModelSpec,
    reserve: float,
    current: int,
) -> Plan:
    """Fewest replicas carrying ``demand`` at T_op with ``reserve`` in hand down to the floor; budget checked.

    Scale-downs are planned against ``DOWNSCALE_HYSTERESIS`` of the target: the model is corrected
    where the replicas run now, and is least sure about the fewer replicas it has not seen.
    """
    cap_op = model.capacity(bounds.t_op, target_s)
    cap_lo = model.capacity(bounds.t_lo, target_s)
    wanted = _replicas_for(demand, cap_op, cap_lo, reserve, bounds.n_max)
    if wanted < current:
        strict = _replicas_for(
            demand,
            model.capacity(bounds.t_op, target_s * DOWNSCALE_HYSTERESIS),
            model.capacity(bounds.t_lo, target_s * DOWNSCALE_HYSTERESIS),
            reserve,
            bounds.n_max,
        )
        wanted = min(current, max(wanted, strict))
    if cap_lo <= 0:
        return Plan(
            bounds.n_max,
            c.verdict(c.FALSE, c.SLO_UNREACHABLE, "no load meets the SLO target"),
            "SLO below a lone request's latency",
            lone_request=True,
        )
    slo_replicas = min(max(wanted, bounds.n_min), bounds.n_max)
    why = f"plan {slo_replicas} replicas at T_op {bounds.t_op:.2f} (floor {bounds.t_lo:.2f})"
    if demand > bounds.n_max * cap_lo:
        verdict = c.verdict(
            c.FALSE,
            c.SLO_UNREACHABLE,
            f"load {demand:.2f} req/s exceeds {bounds.n_max} replicas at the quality floor "
            f"({bounds.n_max * cap_lo:.2f} req/s)",
        )
        return Plan(bounds.n_max, verdict, why + "; SLO unreachable even at max replicas and the floor")
    if limit_w is None or model.total_power_w(demand, bounds.t_lo, slo_replicas) <= limit_w:
        return Plan(slo_replicas, c.verdict(c.TRUE, c.FEASIBLE, "SLO, budget and quality floor can all hold"), why)
    return _budget_conflict(
        model, demand, bounds=bounds, limit_w=limit_w, spec=spec, slo_replicas=slo_replicas, why=why
    )


def _replicas_for(demand: float, cap_op: float, cap_lo: float, reserve: float, n_max: int) -> int:
    """Replicas carrying ``demand`` at T_op and ``reserve`` × demand at the floor."""
    if demand <= 0:
        # A known zero load needs no replica, whatever the model says of a lone request (it was
        # n_max before the first requests taught the model: an idle model scaled to its maximum).
        return 0
    if cap_op <= 0 or cap_lo <= 0:
        return n_max
    return max(math.ceil(demand / cap_op - 1e-9), math.ceil(reserve * demand / cap_lo - 1e-9))


def _budget_conflict(
    model: ResponseModel,
    demand: float,
    *,
    bounds: Bounds,
    limit_w: float,
    spec: RoutedModelSpec,
    slo_replicas: int,
    why: str,
) -> Plan:
    """SLO and budget cannot both hold: follow ``priority``."""
    assert spec.budget is not None  # only called with a budget
    if spec.budget.priority == "SLO":
        message = f"SLO needs {slo_replicas} replicas, over the {limit_w:.0f} W budget (after reserve); priority SLO"
        return Plan(slo_replicas, c.verdict(c.FALSE, c.BUDGET_YIELDS_TO_SLO, message), why + "; budget yields to SLO")
    affordable = bounds.n_min
    for n in range(slo_replicas, bounds.n_min - 1, -1):
        if model.total_power_w(demand, bounds.t_lo, n) <= limit_w:
            affordable = n
            break
    message = (
        f"SLO needs {slo_replicas} replicas but {limit_w:.0f} W (after reserve) affords {affordable}; priority Budget"
    )
    return Plan(
        affordable,
        c.verdict(c.FALSE, c.SLO_YIELDS_TO_BUDGET, message),
        f"{why}; SLO yields to budget: {affordable} replicas",
    )


def stabilize(
    recommendations: list[tuple[float, int]],
    current: int,
    now: float,
    spec: RoutedModelSpec,
    *,
    since: float | None,
    previous: int | None = None,
    wait_periods: int = SCALE_UP_CONFIRMATIONS + 1,
) -> tuple[int, str]:
    """HPA's rule: up to the lowest wish of the up window, down to the highest of the down window; step limits.

    ``previous`` is the wish of the decision before this one (``None``: no recent one, the replicas in
    place stand for it). It counts in the up window, so a scale-up needs two periods in a row that want
    it: the first period of a burst is the temperature's (DESIGN §4), replicas follow from the next.
    """
    up, down = spec.behavior.scale_up, spec.behavior.scale_down
    ups = [n for t, n in recommendations if now - t <= up.stabilization_window_seconds]
    ups.append(current if previous is None else previous)
    downs = [n for t, n in recommendations if now - t <= down.stabilization_window_seconds]
    if since is None or now - since < down.stabilization_window_seconds:
        downs.append(current)  # a fresh memory has not seen a full window: the replicas in place count as a wish
    wanted = recommendations[-1][1]
    result = current
    if ups and result < min(ups):
        result = min(ups)
    if downs and result > max(downs):
        result = max(downs)
    result = min(result, current + up.max_step_replicas)
    result = max(result, current - down.max_step_replicas)
    result = min(max(result, spec.replicas.min), spec.replicas.max)
    note = ""
    if wanted < current and result > wanted:
        window, step = down.stabilization_window_seconds, down.max_step_replicas
        note = f"scale-down to {wanted} waits for its {window}s window and {step}-replica step"
    elif wanted > current and result == current:
        note = f"scale-up to {wanted} waits for {wait_periods} periods that want it: the temperature answers first"
    elif wanted > current and result < wanted:
        note = f"scale-up to {wanted} limited to {up.max_step_replicas} per step"
    return result, note


def heed_observation(
    plan: Plan, seen: Evidence, mem: LawMemory, now: float, *, bounds: Bounds, target_s: float
) -> Plan:
    """What the observed latency says over the model's replica plan.

    An observed excursion never lets the plan shrink. It asks for one more replica, whatever the model
    predicts, when it persists (seen the period before too) or the knob is spent (quality floor),
    provided every pod has been ready for a whole SLO window (the quantile then describes the replicas
    in place, not the ones before the last scale-up) and none is in its warm-up. The reverse: when the
    model puts a lone request over the target (no replica count can help) but the observed quantile
    meets it, the model is wrong the other way: keep the replicas. A budget under priority Budget stays the hard limit.
    """
    if plan.feasible.reason == c.SLO_YIELDS_TO_BUDGET:
        return plan
    current = min(max(seen.replicas, bounds.n_min), bounds.n_max)
    if mem.excursion_since is None:
        if plan.lone_request:
            return replace(
                plan, replicas=current, why=plan.why + f", but the observed latency meets it: keep {current}"
            )
        return plan
    wanted, why = max(plan.replicas, current), plan.why
    if plan.lone_request:
        # The model has learned a mismatch as latency spread (it cannot tell a slower replica from a
        # wider tail) and would ask for every replica: size from the observed excess instead, at most
        # doubling, and only once the pods asked for before are ready.
        excess = (seen.latency_s or 0.0) / target_s
        grown = min(2 * current, math.ceil(current * excess - 1e-9))
        wanted = max(current, grown) if seen.starting == 0 else current
        why += f"; sized from the observed excess instead: {min(wanted, bounds.n_max)} replicas"
    persists = mem.excursion_since < now or seen.temperature <= bounds.t_lo + 1e-9
    settled = mem.settled_since is not None and now - mem.settled_since >= seen.window_s and not seen.warming
    if persists and settled and current < bounds.n_max and wanted <= current:
        wanted = current + 1
        why += f"; observed latency over target: {wanted} replicas whatever the model says"
    return replace(plan, replicas=min(wanted, bounds.n_max), why=why)


def previous_wish(mem: LawMemory, now: float, spec: RoutedModelSpec, *, knob_spent: bool = False) -> int | None:
    """The lowest replica wish of the last ``SCALE_UP_CONFIRMATIONS`` decisions, when they are recent.

    Once the temperature is at its floor (the knob is spent) only the last one counts: nothing else can
    answer the load. ``None`` when there are fewer recent ones (a fresh memory, a gap): the replicas in
    place stand for them.
    """
    count = 1 if knob_spent else SCALE_UP_CONFIRMATIONS
    period = spec.behavior.period_seconds
    recent = max(spec.behavior.scale_up.stabilization_window_seconds, (count + 2) * period)
    wishes = [n for t, n in mem.recommendations[-count:] if 0 <= now - t <= recent]
    return min(wishes) if len(wishes) == count else None
