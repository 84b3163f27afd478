"""The routing profile the operator plans with, calibrated to this machine's measured throughput.

The runtime serves a profile measured (or assumed) on some device; its ``tokens_per_s`` tell the law
how many requests one replica carries. On a machine the profile was not measured on those figures
can be off by several times (an H100's against one CPU thread), more than the law's online latency
correction can absorb. The stack has just measured, on this machine and in the local frame (one
thread, batch 1, the run's request shape), the generated tokens per second at T = 1 and at T_min.
This module rescales the profile's ``tokens_per_s`` so that it matches both measurements: each
point's figures are multiplied by a factor interpolated linearly in the routing temperature between
the factor at T_min and the factor at T = 1. Quality figures (agreement, KL, perplexity) and FLOP
fractions are the runtime's, untouched; ``device`` and ``notes`` say what was changed.
"""

from __future__ import annotations

import copy
from typing import Any

from thermostat_stack.capacity import Capacity


def _batch1(point: dict[str, Any]) -> float:
    rates: dict[str, float] = point["tokens_per_s"]
    return float(rates.get("1", rates[min(rates, key=int)]))


def _point_at(points: list[dict[str, Any]], temperature: float) -> dict[str, Any]:
    return min(points, key=lambda p: abs(float(p["routing_temperature"]) - temperature))


def calibrated_profile(profile: dict[str, Any], capacity: Capacity) -> dict[str, Any]:
    """``profile`` with its throughput rescaled to ``capacity``'s measurements (unchanged without them)."""
    if not capacity.exact_tokens_per_s:
        return profile
    points: list[dict[str, Any]] = profile["points"]
    k_exact = capacity.exact_tokens_per_s / _batch1(_point_at(points, 1.0))
    k_min = k_exact
    if capacity.t_min < 1.0 and capacity.tmin_tokens_per_s:
        k_min = capacity.tmin_tokens_per_s / _batch1(_point_at(points, capacity.t_min))
    out = copy.deepcopy(profile)
    span = max(1.0 - capacity.t_min, 1e-9)
    for point in out["points"]:
        weight = min(max((float(point["routing_temperature"]) - capacity.t_min) / span, 0.0), 1.0)
        factor = k_min + (k_exact - k_min) * weight
        point["tokens_per_s"] = {batch: rate * factor for batch, rate in point["tokens_per_s"].items()}
    out["device"] = f"{profile['device']}; throughput rescaled to this machine by thermostat up"
    out["notes"] = (
        f"{profile.get('notes', '')} tokens_per_s multiplied by {k_min:.3g} at T_min={capacity.t_min:g} and "
        f"{k_exact:.3g} at T=1 (linear in between) to match the local stack's batch-1 measurement: "
        f"{capacity.exact_tokens_per_s:.3g} tokens/s at T=1"
        + (f", {capacity.tmin_tokens_per_s:.3g} at T_min." if capacity.tmin_tokens_per_s else ".")
    ).strip()
    return out
