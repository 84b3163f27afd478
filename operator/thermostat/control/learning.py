"""What the law learns from each fresh observation: the response model's corrections and quality.

- ``tokens_per_request`` from the token and request rates;
- ``latency_scale`` (observed over predicted quantile) where the model puts the replicas below the
  queueing knee, and ``capacity_scale`` (how much earlier than the profile says the replicas
  saturate) above it: one latency signal cannot tell a slower replica from a wider spread, the load
  at which it is seen can. Both are weighted by the completions in the window and never learned from
  a pod's warm-up;
- ``power_scale`` on the dynamic part of power;
- ``quality_scale``: the shadow-measured KL over the profile's KL at the temperature in force, once
  that temperature has held for a whole window and the window holds enough shadow tokens; with fewer,
  the profile is trusted (and the QualityWithinBudget verdict says so);
- the time-averaged quality loss, measured where the shadow evidence suffices, else the profile's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from thermostat.api.spec import RoutedModelSpec
from thermostat.control.evidence import Evidence
from thermostat.control.memory import (
    CAPACITY_CORRECTION_BOUNDS,
    LATENCY_CORRECTION_BOUNDS,
    LEARNING_RATE,
    QUALITY_CORRECTION_BOUNDS,
    LawMemory,
    blend,
)
from thermostat.control.model import OVERLOAD_LATENCY_S, ResponseModel
from thermostat.control.profile import Profile, quality_loss_percent
from thermostat.control.signals import load_value, reading_value
from thermostat.control.types import Observation

MIN_REQUESTS_TO_LEARN = 20  # completions in the SLO window for a full-weight update; fewer weigh less
KNEE_ONSET = 0.5  # below this utilisation (per the model) latency errors are spread; above, capacity
CAPACITY_FORGETTING = 0.05  # well below the target the capacity correction drifts back toward the profile
FORGET_BELOW_TARGET = 0.5  # "well below": an observed quantile under half the SLO target
SATURATED_OVER_TARGET = 3.0  # a quantile this far over the target measures the queue, not the capacity
CAPACITY_STEPS = 20  # bisection steps for the capacity that explains an observed quantile
MIN_SHADOW_TOKENS = 64  # fewer shadow tokens in a window: trust the profile
FULL_WEIGHT_SHADOW_TOKENS = 1024  # shadow tokens in a window for a full-weight quality update
MIN_PROFILE_KL = 1e-4  # at (nearly) exact temperatures the ratio to the profile says nothing
MAX_INTEGRATION_GAP_S = 600.0  # a longer gap between decisions (operator down) is not averaged over


@dataclass(frozen=True)
class Quality:
    """What the window says about quality: shadow tokens seen, and the measured loss when they suffice."""

    shadow_tokens: float
    measured_percent: float | None  # from the shadow KL; None with too few shadow tokens


def model_for(profile: Profile, mem: LawMemory, spec: RoutedModelSpec) -> ResponseModel:
    """The response model with this memory's corrections."""
    return ResponseModel(
        profile,
        capacity_scale=mem.capacity_scale,
        latency_scale=mem.latency_scale,
        power_scale=mem.power_scale,
        tokens_per_request=mem.tokens_per_request,
        metric=str(spec.slo.metric),
    )


def window_quality(obs: Observation, window_s: float) -> Quality:
    """Shadow tokens in the window and, with at least ``MIN_SHADOW_TOKENS``, the loss they measured."""
    tokens = (load_value(obs.shadow_token_rate) or 0.0) * window_s
    kl = reading_value(obs.quality_kl_nats)
    measured = quality_loss_percent(kl) if kl is not None and tokens >= MIN_SHADOW_TOKENS else None
    return Quality(tokens, measured)


def learn(mem: LawMemory, obs: Observation, seen: Evidence, profile: Profile, spec: RoutedModelSpec) -> LawMemory:
    """Every correction this observation supports."""
    mem = _learn_tokens(mem, obs)
    model = model_for(profile, mem, spec)
    if not seen.warming:
        mem = _learn_latency(mem, model, seen, spec)
    mem = _learn_power(mem, model, obs, seen)
    return _learn_quality(mem, obs, seen, profile)


def _learn_tokens(mem: LawMemory, obs: Observation) -> LawMemory:
    # Tokens are generated for served requests only: divide by what was served, not what was offered.
    served = load_value(obs.served_rate)
    rate = load_value(obs.request_rate) if served is None else served
    tokens = load_value(obs.token_rate)
    if tokens is None or rate is None or rate <= 0.05 or tokens <= 0:
        return mem
    ratio = tokens / rate / mem.tokens_per_request
    return replace(mem, tokens_per_request=max(1.0, mem.tokens_per_request * ratio**0.3))


def _learn_latency(mem: LawMemory, model: ResponseModel, seen: Evidence, spec: RoutedModelSpec) -> LawMemory:
    # Evidence, not a cut-off: a window of few completions still says something (the local stack
    # sees 10-30 per window), it just moves the correction less.
    weight = min(1.0, seen.completions / MIN_REQUESTS_TO_LEARN)
    if seen.latency_s is None or seen.ready <= 0 or weight <= 0 or seen.latency_s <= 0:
        return mem
    per_replica = seen.demand / seen.ready
    predicted = model.latency_s(per_replica, seen.temperature)
    if model.utilisation(per_replica, seen.temperature) >= KNEE_ONSET:
        saturated = predicted >= OVERLOAD_LATENCY_S or seen.latency_s > SATURATED_OVER_TARGET * spec.slo.target_seconds
        return mem if saturated else _learn_capacity(mem, model, seen, per_replica, weight)
    # Far from the target (over-provisioned), the knee drifts back toward where the profile puts it, so
    # an old overload does not keep replicas provisioned forever; nearer the target it is kept: replicas
    # sized by it are what keeps the knee out of sight (forgetting there made the law oscillate).
    if seen.latency_s < FORGET_BELOW_TARGET * spec.slo.target_seconds:
        forgotten = blend(mem.capacity_scale, 1.0 / mem.capacity_scale, CAPACITY_FORGETTING * weight)
        mem = replace(mem, capacity_scale=forgotten)
    ratio = seen.latency_s / predicted
    if not (ratio > 0.0 and math.isfinite(ratio)):  # a denormal or absurd reading underflows: it teaches nothing
        return mem
    error = abs(math.log(ratio))
    ewma = error if mem.latency_error is None else mem.latency_error + 0.2 * weight * (error - mem.latency_error)
    scale = blend(mem.latency_scale, ratio, LEARNING_RATE * weight, LATENCY_CORRECTION_BOUNDS)
    return replace(mem, latency_scale=scale, latency_error=ewma, samples=mem.samples + 1)


def _learn_capacity(
    mem: LawMemory, model: ResponseModel, seen: Evidence, per_replica: float, weight: float
) -> LawMemory:
    """Move ``capacity_scale`` toward the one whose predicted quantile is the observed one."""
    lo, hi = CAPACITY_CORRECTION_BOUNDS
    for _ in range(CAPACITY_STEPS):
        mid = math.sqrt(lo * hi)
        if replace(model, capacity_scale=mid).latency_s(per_replica, seen.temperature) < seen.latency_s:  # type: ignore[operator]
            lo = mid
        else:
            hi = mid
    fitted = math.sqrt(lo * hi)
    predicted = min(model.latency_s(per_replica, seen.temperature), OVERLOAD_LATENCY_S)
    error = abs(math.log(seen.latency_s / predicted))  # type: ignore[operator]
    ewma = error if mem.latency_error is None else mem.latency_error + 0.2 * weight * (error - mem.latency_error)
    scale = blend(mem.capacity_scale, fitted / mem.capacity_scale, LEARNING_RATE * weight, CAPACITY_CORRECTION_BOUNDS)
    return replace(mem, capacity_scale=scale, latency_error=ewma, samples=mem.samples + 1)


def _learn_power(mem: LawMemory, model: ResponseModel, obs: Observation, seen: Evidence) -> LawMemory:
    power = reading_value(obs.power_w)
    if power is None or seen.ready <= 0:
        return mem
    idle = model.power.idle_w * max(seen.replicas, seen.ready)
    predicted_dynamic = model.total_power_w(seen.demand, seen.temperature, seen.ready, seen.starting) - idle
    if predicted_dynamic <= 0.05 * idle:
        return mem
    return replace(mem, power_scale=blend(mem.power_scale, max(0.0, power - idle) / predicted_dynamic))


def _learn_quality(mem: LawMemory, obs: Observation, seen: Evidence, profile: Profile) -> LawMemory:
    """Correct the profile's KL from shadow requests served at one temperature for a whole window."""
    quality = window_quality(obs, seen.window_s)
    kl = reading_value(obs.quality_kl_nats)
    expected = profile.kl_nats(seen.temperature)
    steady = seen.temperature_held_s >= seen.window_s
    if quality.measured_percent is None or kl is None or expected < MIN_PROFILE_KL or not steady:
        return mem
    weight = min(1.0, quality.shadow_tokens / FULL_WEIGHT_SHADOW_TOKENS)
    ratio = max(kl, 1e-6) / (expected * mem.quality_scale)
    scale = blend(mem.quality_scale, ratio, LEARNING_RATE * weight, QUALITY_CORRECTION_BOUNDS)
    return replace(mem, quality_scale=scale, quality_samples=mem.quality_samples + 1)


def integrate_quality(mem: LawMemory, obs: Observation, profile: Profile, now: float, window_s: float) -> LawMemory:
    """Add the loss in force since the last decision to the time average (measured when it can be)."""
    if mem.last_time is None or not 0 < now - mem.last_time <= MAX_INTEGRATION_GAP_S:
        return mem
    dt = now - mem.last_time
    measured = window_quality(obs, window_s).measured_percent
    loss = (
        measured if measured is not None else profile.quality_loss_percent(obs.routing_temperature, mem.quality_scale)
    )
    return replace(
        mem, quality_loss_integral=mem.quality_loss_integral + loss * dt, quality_time_s=mem.quality_time_s + dt
    )
