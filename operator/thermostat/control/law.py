"""The control law: ``decide(observation, spec, memory, now, profile=...) -> Decision`` (DESIGN §4).

Two knobs on two time scales. Each period the law
1. learns: corrects the response model (capacity, power, tokens per request) from what it observed;
2. plans replicas (slow): the fewest that carry the load at the operating temperature ``T_op`` and
   keep a burst reserve down to the quality floor, within the budget, then stabilized and
   step-limited like Kubernetes' HPA (pods still starting count as capacity: no double scale-up);
3. picks the temperature (fast): the highest temperature up to ``T_op`` that meets the SLO (with
   margin) and the budget (with reserve) on the replicas ready now; drops are immediate, rises
   limited to ``maxTemperatureStepUp`` per period.
The observed latency has the last word over the model: an observed excursion lowers the temperature
in the same decision and blocks rises; a scale-up needs two periods in a row that want it (the first
period of a burst is the temperature's); a persisting violation adds replicas whatever the model says,
and a model that contradicts a met SLO at a lone request is not followed (docs/control-law.md).
``T_op`` is the lowest temperature (least energy) from which the knob still has ``BURST_RESERVE``
of capacity in hand before the floor; when the knob's whole range is smaller, ``T_op`` is the
ceiling and replicas keep the reserve. Missing or stale metrics hold (or apply ``Replicas``), never
scale down. Pure: no I/O, time passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from thermostat.api.spec import RoutedModelSpec
from thermostat.control import conditions as c
from thermostat.control.memory import LATENCY_CORRECTION_BOUNDS, LEARNING_RATE, LawMemory, blend, load_memory
from thermostat.control.model import OVERLOAD_LATENCY_S, ResponseModel
from thermostat.control.planning import Plan, budget_verdict, plan_replicas, power_limit_w, stabilize
from thermostat.control.profile import Profile
from thermostat.control.signals import Idle, Missing, load_value, reading_value
from thermostat.control.types import Decision, Observation, Signal, Verdict

BURST_RESERVE = 1.15  # capacity kept in hand over the planned load: the knob's range first, then replicas
MIN_REQUESTS_TO_LEARN = 20  # completions in the SLO window for a full-weight update; fewer weigh less
LEARN_BELOW_UTILISATION = 0.9  # near saturation the latency is too steep to attribute errors


@dataclass(frozen=True)
class Bounds:
    """The allowed ranges of the two knobs for this spec and profile."""

    t_lo: float
    t_hi: float
    t_op: float
    n_min: int
    n_max: int


def temperature_bounds(spec: RoutedModelSpec, profile: Profile) -> Bounds:
    """Quality floor, ceiling and operating temperature, and replica bounds."""
    t_hi = min(1.0, max(profile.t_min, spec.quality.max_routing_temperature))
    t_lo = max(profile.t_min, spec.quality.min_routing_temperature or profile.t_min)
    if spec.quality.max_quality_loss_points is not None:
        t_lo = max(t_lo, profile.lowest_temperature_within(spec.quality.max_quality_loss_points))
    t_lo = min(t_lo, t_hi)
    reach = profile.time_fraction(t_lo)
    candidates = [t for t in (*profile.temperatures, t_hi) if t_lo <= t <= t_hi]
    t_op = min((t for t in candidates if profile.time_fraction(t) >= BURST_RESERVE * reach), default=t_hi)
    return Bounds(t_lo, t_hi, t_op, spec.replicas.min, spec.replicas.max)


def decide(
    observation: Observation,
    spec: RoutedModelSpec,
    memory: dict[str, Any] | None,
    now: float,
    *,
    profile: Profile,
) -> Decision:
    """The settings the law wants now, why, and the memory to pass to the next call."""
    mem, reset_note = load_memory(memory)
    bounds = temperature_bounds(spec, profile)
    missing = _missing_signals(observation, spec, now)
    if missing:
        decision = _hold(observation, spec, mem, now, missing)
    else:
        mem = _learn(mem, observation, profile, spec)
        decision = _act(observation, spec, mem, now, bounds=bounds, profile=profile)
    if reset_note is not None:
        decision = replace(decision, reason=f"{decision.reason}; {reset_note}", memory_reset=True)
    return decision


def _missing_signals(observation: Observation, spec: RoutedModelSpec, now: float) -> dict[str, str]:
    """The signals the law needs (latency, request rate) that are missing or stale, with why."""
    age_s = now - observation.time
    if age_s > spec.behavior.metrics_max_age_seconds:
        why = f"Stale: newest sample {age_s:.0f}s old"
        return {Signal.LATENCY.value: why, Signal.REQUEST_RATE.value: why}
    missing: dict[str, str] = {}
    for name, value in ((Signal.LATENCY, observation.latency_s), (Signal.REQUEST_RATE, observation.request_rate)):
        if isinstance(value, Missing):
            missing[name.value] = value.reason
    return missing


def _hold(
    observation: Observation, spec: RoutedModelSpec, mem: LawMemory, now: float, missing: dict[str, str]
) -> Decision:
    """Metrics unavailable: keep the knobs (or run at least Replicas(n)); never scale down."""
    rule = spec.behavior.on_metrics_unavailable
    replicas = observation.replicas
    action = "hold"
    if rule.action == "Replicas" and rule.replicas is not None and rule.replicas > replicas:
        replicas, action = rule.replicas, f"run at least {rule.replicas} replicas"
    replicas = min(max(replicas, spec.replicas.min), max(observation.replicas, spec.replicas.max))
    metrics = c.metrics_verdict(missing)
    conditions: dict[str, Verdict] = {
        c.ConditionType.SLO_MET: c.slo_verdict(
            reading_value(observation.latency_s), spec.slo.target_seconds, spec.slo.quantile
        ),
        c.ConditionType.WITHIN_BUDGET: budget_verdict(observation, spec),
        c.ConditionType.METRICS_AVAILABLE: metrics,
        c.ConditionType.FEASIBLE: c.verdict(c.UNKNOWN, c.DECISION_HELD, "not evaluated while metrics are unavailable"),
    }
    reason = (
        f"{metrics.message}: {action} (onMetricsUnavailable {rule.action}), temperature "
        f"{observation.routing_temperature:.2f}, replicas {observation.replicas}→{replicas}"
    )
    memory = replace(mem, last_time=now, last_temperature=observation.routing_temperature).to_dict()
    return Decision(observation.routing_temperature, replicas, reason, memory, conditions, held=True)


def _learn(mem: LawMemory, obs: Observation, profile: Profile, spec: RoutedModelSpec) -> LawMemory:
    """Correct tokens per request, capacity and power from this observation."""
    rate = load_value(obs.request_rate) or 0.0
    tokens, latency, power = load_value(obs.token_rate), reading_value(obs.latency_s), reading_value(obs.power_w)
    if tokens is not None and rate > 0.05 and tokens > 0:
        mem = replace(
            mem,
            tokens_per_request=max(1.0, mem.tokens_per_request * (tokens / rate / mem.tokens_per_request) ** 0.3),
        )
    model = _model(profile, mem, spec)
    ready = obs.ready_replicas
    # Evidence, not a cut-off: a window of few completions still says something (the local stack
    # sees 10-30 per window), it just moves the correction less.
    weight = min(1.0, rate * spec.slo.window_seconds / MIN_REQUESTS_TO_LEARN)
    if latency is not None and ready > 0 and weight > 0 and latency > 0:
        per_replica = rate / ready
        predicted = model.latency_s(per_replica, obs.routing_temperature)
        if (
            predicted < OVERLOAD_LATENCY_S
            and model.utilisation(per_replica, obs.routing_temperature) < LEARN_BELOW_UTILISATION
        ):
            ratio = latency / predicted
            error = abs(math.log(ratio))
            ewma = (
                error if mem.latency_error is None else mem.latency_error + 0.2 * weight * (error - mem.latency_error)
            )
            scale = blend(mem.latency_scale, ratio, LEARNING_RATE * weight, LATENCY_CORRECTION_BOUNDS)
            mem = replace(mem, latency_scale=scale, latency_error=ewma, samples=mem.samples + 1)
    if power is not None and ready > 0:
        idle = model.power.idle_w * max(obs.replicas, ready)
        predicted_dynamic = (
            model.total_power_w(rate, obs.routing_temperature, ready, max(0, obs.replicas - ready)) - idle
        )
        if predicted_dynamic > 0.05 * idle:
            mem = replace(mem, power_scale=blend(mem.power_scale, max(0.0, power - idle) / predicted_dynamic))
    return mem


def _model(profile: Profile, mem: LawMemory, spec: RoutedModelSpec) -> ResponseModel:
    return ResponseModel(
        profile,
        latency_scale=mem.latency_scale,
        power_scale=mem.power_scale,
        tokens_per_request=mem.tokens_per_request,
        metric=str(spec.slo.metric),
    )


def _act(
    obs: Observation, spec: RoutedModelSpec, mem: LawMemory, now: float, *, bounds: Bounds, profile: Profile
) -> Decision:
    """Metrics fresh: plan replicas, stabilize them, pick the temperature, report."""
    model = _model(profile, mem, spec)
    # A backlog is load too: drain what waits within one SLO window.
    demand = (load_value(obs.request_rate) or 0.0) + (load_value(obs.queue_depth) or 0.0) / spec.slo.window_seconds
    target_s = spec.slo.target_seconds * (1.0 - spec.slo.margin_fraction)
    limit_w = power_limit_w(spec, demand, model.tokens_per_request)
    plan = plan_replicas(
        model,
        demand,
        bounds=bounds,
        target_s=target_s,
        limit_w=limit_w,
        spec=spec,
        reserve=BURST_RESERVE,
        current=obs.replicas,
    )
    latency = reading_value(obs.latency_s)
    excursion = latency is not None and latency > target_s
    # A lone-request verdict contradicted by a met SLO at a quiet load (too few requests in the window to
    # have queued) is the model being wrong: it is not followed. Under real load the plan stands.
    if plan.lone_request and not excursion and demand * spec.slo.window_seconds >= MIN_REQUESTS_TO_LEARN:
        plan = replace(plan, lone_request=False)
    mem = _track(mem, obs, now, excursion=excursion, window_s=float(spec.slo.window_seconds))
    plan = _heed_observation(
        plan, obs, mem, now, bounds=bounds, window_s=float(spec.slo.window_seconds), target_s=target_s
    )
    window = max(
        spec.behavior.scale_up.stabilization_window_seconds, spec.behavior.scale_down.stabilization_window_seconds
    )
    if mem.since is None:
        mem = replace(mem, since=now)
    previous = _previous_wish(mem, now, spec)
    mem = mem.remember(now, plan.replicas, float(window))
    replicas, note = stabilize(mem.recommendations, obs.replicas, now, spec, since=mem.since, previous=previous)
    if plan.feasible.reason == c.SLO_YIELDS_TO_BUDGET and plan.replicas < replicas:
        # The budget is a hard limit under priority Budget: no stabilization window delays meeting it.
        replicas, note = plan.replicas, "scale-down now: priority Budget"
    temperature = _choose_temperature(
        model, obs, demand, bounds=bounds, target_s=target_s, limit_w=limit_w, spec=spec, plan=plan, excursion=excursion
    )
    starting = max(0, obs.replicas - obs.ready_replicas)
    ready = max(1, obs.ready_replicas)
    predicted_latency = model.latency_s(demand / ready, temperature)
    predicted_power = model.total_power_w(demand, temperature, ready, starting)
    conditions: dict[str, Verdict] = {
        c.ConditionType.SLO_MET: c.slo_verdict(
            latency, spec.slo.target_seconds, spec.slo.quantile, idle=isinstance(obs.latency_s, Idle)
        ),
        c.ConditionType.WITHIN_BUDGET: budget_verdict(obs, spec),
        c.ConditionType.METRICS_AVAILABLE: c.metrics_verdict({}),
        c.ConditionType.FEASIBLE: plan.feasible,
    }
    reason = _reason(obs, spec, demand=demand, temperature=temperature, replicas=replicas, plan=plan, note=note)
    memory = replace(mem, last_time=now, last_temperature=temperature).to_dict()
    return Decision(
        temperature,
        replicas,
        reason,
        memory,
        conditions,
        predicted_latency_s=min(predicted_latency, OVERLOAD_LATENCY_S),
        predicted_power_w=predicted_power,
    )


def _track(mem: LawMemory, obs: Observation, now: float, *, excursion: bool, window_s: float) -> LawMemory:
    """Remember since when the latency has been over target and since when every pod has been ready.

    Pods found ready by a fresh memory count as settled a window ago: nothing says otherwise.
    """
    excursion_since = (mem.excursion_since if mem.excursion_since is not None else now) if excursion else None
    if obs.ready_replicas < obs.replicas:
        settled_since = None
    elif mem.settled_since is not None:
        settled_since = mem.settled_since
    else:
        settled_since = now - window_s if mem.last_time is None else now
    return replace(mem, excursion_since=excursion_since, settled_since=settled_since)


def _heed_observation(
    plan: Plan, obs: Observation, mem: LawMemory, now: float, *, bounds: Bounds, window_s: float, target_s: float
) -> Plan:
    """What the observed latency says over the model's replica plan.

    An observed excursion never lets the plan shrink. It asks for one more replica, whatever the model
    predicts, when it persists (seen the period before too) or the knob is spent (quality floor),
    provided every pod has been ready for a whole SLO window (the quantile then describes the replicas
    in place, not the ones before the last scale-up). The reverse: when the model puts a lone request
    over the target (no replica count can help) but the observed quantile meets it, the model is wrong
    the other way: keep the replicas. A budget under priority Budget stays the hard limit.
    """
    if plan.feasible.reason == c.SLO_YIELDS_TO_BUDGET:
        return plan
    current = min(max(obs.replicas, bounds.n_min), bounds.n_max)
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
        excess = (reading_value(obs.latency_s) or 0.0) / target_s
        grown = min(2 * current, math.ceil(current * excess - 1e-9))
        wanted = max(current, grown) if obs.ready_replicas >= obs.replicas else current
        why += f"; sized from the observed excess instead: {min(wanted, bounds.n_max)} replicas"
    persists = mem.excursion_since < now or obs.routing_temperature <= bounds.t_lo + 1e-9
    settled = mem.settled_since is not None and now - mem.settled_since >= window_s
    if persists and settled and current < bounds.n_max and wanted <= current:
        wanted = current + 1
        why += f"; observed latency over target: {wanted} replicas whatever the model says"
    return replace(plan, replicas=min(wanted, bounds.n_max), why=why)


def _previous_wish(mem: LawMemory, now: float, spec: RoutedModelSpec) -> int | None:
    """The replica wish of the last decision, when it is recent (within three periods)."""
    if not mem.recommendations:
        return None
    t, wanted = mem.recommendations[-1]
    recent = max(spec.behavior.scale_up.stabilization_window_seconds, 3 * spec.behavior.period_seconds)
    return wanted if 0 <= now - t <= recent else None


def _choose_temperature(
    model: ResponseModel,
    obs: Observation,
    demand: float,
    *,
    bounds: Bounds,
    target_s: float,
    limit_w: float | None,
    spec: RoutedModelSpec,
    plan: Plan,
    excursion: bool,
) -> float:
    """Highest temperature up to T_op meeting SLO and budget on the ready replicas; priority breaks ties.

    The observation has the last word: an observed excursion lowers the temperature at once (at least
    one profiled step, more when the model asks) and forbids any rise; a model that puts a lone
    request over the target while the observed latency meets it is not followed down.
    """
    ready = obs.ready_replicas
    current = min(max(obs.routing_temperature, bounds.t_lo), bounds.t_hi)
    if ready <= 0:
        return current
    ceiling = current if excursion else min(bounds.t_op, current + spec.behavior.max_temperature_step_up)
    grid = {t for t in model.profile.temperatures if bounds.t_lo <= t <= ceiling} | {bounds.t_lo, ceiling}
    starting = max(0, obs.replicas - ready)
    slo_ok, budget_ok = _meeting(
        model, sorted(grid, reverse=True), demand, ready=ready, starting=starting, target_s=target_s, limit_w=limit_w
    )
    both = [t for t in slo_ok if t in budget_ok]
    if plan.lone_request and not excursion:
        # The model contradicts what is observed at this very load: do not act on it, hold (within budget).
        affordable = limit_w is None or model.total_power_w(demand, current, ready, starting) <= limit_w
        chosen = current if affordable else next(iter(budget_ok), bounds.t_lo)
    elif both:
        chosen = both[0]
    else:
        preferred = slo_ok if spec.budget is None or spec.budget.priority == "SLO" else budget_ok
        chosen = preferred[0] if preferred else bounds.t_lo
    if excursion:
        chosen = min(chosen, max((t for t in grid if t < current - 1e-9), default=bounds.t_lo))
    return chosen


def _meeting(
    model: ResponseModel,
    temperatures: list[float],
    demand: float,
    *,
    ready: int,
    starting: int,
    target_s: float,
    limit_w: float | None,
) -> tuple[list[float], list[float]]:
    """Of ``temperatures`` (order kept), those the model says meet the SLO, and those within the budget."""
    slo_ok = [t for t in temperatures if model.latency_s(demand / ready, t) <= target_s]
    budget_ok = [
        t for t in temperatures if limit_w is None or model.total_power_w(demand, t, ready, starting) <= limit_w
    ]
    return slo_ok, budget_ok


def _reason(
    obs: Observation, spec: RoutedModelSpec, *, demand: float, temperature: float, replicas: int, plan: Plan, note: str
) -> str:
    """A sentence a person can read: what was seen, what changes, and why."""
    q = f"p{round(spec.slo.quantile * 100):d}"
    latency = reading_value(obs.latency_s)
    measured = f"{latency:.2f}s" if latency is not None else "idle (no request in the window)"
    seen = f"{q} {measured} vs SLO {spec.slo.target_seconds:.2f}s, load {demand:.2f} req/s"
    change = f"temperature {obs.routing_temperature:.2f}→{temperature:.2f}, replicas {obs.replicas}→{replicas}"
    parts = [f"{seen}: {change}", plan.why]
    if note:
        parts.append(note)
    return "; ".join(parts)
