"""The knobs' ranges: the quality floor, the ceiling, the steady operating point, replica bounds.

The steady operating point ``t_op`` is the lowest-energy temperature whose expected quality loss fits
``quality.maxQualityLossPercent`` (DESIGN §1, §3): the profile's KL, corrected by what shadow requests
measured (``quality_scale``), turned into percent. Energy is compared per generated token at a
replica's peak throughput, so a temperature that saves FLOPs but not time (or the reverse) is weighed
as the power model weighs it. The floor ``t_lo`` is for the fast path only, while the SLO is at risk;
the law returns to ``t_op`` afterwards. It is ``minRoutingTemperature`` when set; unset, it is the
lowest temperature (at least the runtime's ``T_min``) whose expected loss stays within
``EMERGENCY_LOSS_MULTIPLE`` times the budget (at least that many percent): a default never spends
more quality than that without being asked (the committed CPU profile's T_min loses 133%).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from thermostat.api.spec import RoutedModelSpec
from thermostat.control.model import ResponseModel
from thermostat.control.profile import Profile

BISECTION_STEPS = 24  # the budget's boundary temperature to ~1e-7 of a profile segment
EMERGENCY_LOSS_MULTIPLE = 10.0  # the default floor: expected loss <= 10 x max(budget, 1%)


@dataclass(frozen=True)
class Bounds:
    """The allowed ranges of the two knobs for this spec and profile."""

    t_lo: float  # floor: only while the SLO is at risk
    t_hi: float  # ceiling
    t_op: float  # steady operating point, t_lo <= t_op <= t_hi
    n_min: int
    n_max: int


def temperature_bounds(spec: RoutedModelSpec, profile: Profile, *, quality_scale: float = 1.0) -> Bounds:
    """Floor, ceiling and operating temperature, and replica bounds."""
    quality = spec.quality
    t_hi = min(1.0, max(profile.t_min, quality.max_routing_temperature))
    if quality.min_routing_temperature is not None:
        t_lo = min(max(profile.t_min, quality.min_routing_temperature), t_hi)
    else:
        cap = EMERGENCY_LOSS_MULTIPLE * max(quality.max_quality_loss_percent, 1.0)
        t_lo = operating_temperature(profile, cap, profile.t_min, t_hi, quality_scale, lowest=True)
    t_op = operating_temperature(profile, quality.max_quality_loss_percent, t_lo, t_hi, quality_scale)
    return Bounds(t_lo, t_hi, t_op, spec.replicas.min, spec.replicas.max)


def operating_temperature(
    profile: Profile, budget_percent: float, t_lo: float, t_hi: float, scale: float, *, lowest: bool = False
) -> float:
    """The lowest-energy temperature in [t_lo, t_hi] within the budget, going down from the ceiling
    (``lowest``: the lowest such temperature, whatever its energy).

    Only the contiguous stretch below the ceiling that fits the budget counts (a profile noisy enough to
    dip back under the budget far below is not trusted there). The ceiling itself is kept when even it
    is over budget: the user set it.
    """

    def fits(t: float) -> bool:
        return profile.quality_loss_percent(t, scale) <= budget_percent + 1e-9

    if not fits(t_hi):
        return t_hi
    candidates = [t_hi]
    for t in sorted((t for t in profile.temperatures if t_lo <= t < t_hi), reverse=True):
        if not fits(t):
            candidates.append(_boundary(fits, t, candidates[-1]))
            break
        candidates.append(t)
    if lowest:
        return min(candidates)
    model = ResponseModel(profile)
    return min(candidates, key=lambda t: (round(model.joules_per_token_at_peak(t), 9), -t))


def _boundary(fits: Callable[[float], bool], outside: float, inside: float) -> float:
    """The lowest temperature in (outside, inside] that fits, by bisection (quality is piecewise smooth)."""
    lo, hi = outside, inside
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi
