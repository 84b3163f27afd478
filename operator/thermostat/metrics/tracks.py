"""The A/B figures of a rollout step: each track's counter increases over the analysis interval.

The tracks are told apart by the ``track`` label the scrape configuration copies from the pods'
``thermostat.dev/track`` label (DESIGN §3 "Tracks"); a series without it is stable. The share within
the SLO comes from the latency histogram's bucket whose ``le`` is the SLO target (the runtime adds
that boundary, the routing ConfigMap's ``slo_target_seconds``); without such a bucket the share is
interpolated linearly between the two around it, and the analysis says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from thermostat.api.spec import LatencySlo
from thermostat.control.abtest import TrackSample
from thermostat.metrics.source import NoDataError, Scope
from thermostat.metrics.templates import LATENCY_HISTOGRAMS, selector

STABLE, CANARY = 'track!="canary"', 'track="canary"'


class Queryable(Protocol):
    def query(self, promql: str) -> list[dict[str, object]]: ...


@dataclass(frozen=True)
class TrackPair:
    """Both tracks over the same interval, and whether the SLO share is exact."""

    stable: TrackSample
    canary: TrackSample
    slo_exact: bool


def _sum(source: Queryable, promql: str, *, absent: float | None = 0.0) -> float | None:
    """A summed instant vector; an empty result is ``absent`` (None: the series does not exist)."""
    result = source.query(promql)
    if not result:
        return absent
    total = math.fsum(float(item["value"][1]) for item in result)  # type: ignore[index]
    return total if math.isfinite(total) else absent


def share_within(buckets: dict[float, float], target_s: float) -> tuple[float, float, bool]:
    """(within, total, exact) from cumulative bucket counts keyed by ``le`` (+Inf included)."""
    if math.inf not in buckets:
        raise NoDataError("the latency histogram has no +Inf bucket")
    total = buckets[math.inf]
    exact = next((le for le in buckets if math.isclose(le, target_s, rel_tol=1e-9)), None)
    if exact is not None:
        return buckets[exact], total, True
    bounds = sorted(buckets)
    upper = next(le for le in bounds if le > target_s)
    lower = max((le for le in bounds if le < target_s), default=0.0)
    low_count = buckets.get(lower, 0.0)
    if upper == math.inf:
        return low_count, total, False
    fraction = (target_s - lower) / (upper - lower)
    return low_count + fraction * (buckets[upper] - low_count), total, False


def track_sample(
    source: Queryable, scope: Scope, slo: LatencySlo, track: str, *, window_s: int, t: float
) -> tuple[TrackSample, bool]:
    """One track's figures over the last ``window_s`` seconds."""
    sel = f"{selector(scope)},{track}"

    def inc(series: str, extra: str = "") -> str:
        return f"sum(increase({series}{{{sel}{extra}}}[{window_s}s]))"

    requests = _sum(source, inc("thermostat_requests_total"), absent=None)
    if requests is None:
        raise NoDataError(f"no thermostat_requests_total series for the {track} pods")
    histogram = LATENCY_HISTOGRAMS[slo.metric]
    rows = source.query(f"sum by (le) (increase({histogram}_bucket{{{sel}}}[{window_s}s]))")
    buckets = {float(str(r["metric"]["le"])): float(r["value"][1]) for r in rows}  # type: ignore[index]
    within, timed, exact = share_within(buckets, slo.target_seconds) if buckets else (0.0, 0.0, True)
    sample = TrackSample(
        requests=requests, within_slo=within, timed=timed, temperature=t,
        errors=_sum(source, inc("thermostat_requests_total", ',code=~"5.."')) or 0.0,
        shadow_tokens=_sum(source, inc("thermostat_shadow_tokens_total")) or 0.0,
        shadow_kl_nats=_sum(source, inc("thermostat_shadow_kl_nats_total")) or 0.0,
        shadow_kl_sq_nats=_sum(source, inc("thermostat_shadow_kl_sq_nats_total"), absent=None),
        energy_j=_sum(source, inc("thermostat_gpu_energy_joules_total"), absent=None),
    )  # fmt: skip
    return sample, exact


def track_pair(
    source: Queryable, scope: Scope, slo: LatencySlo, window_s: int, *, stable_t: float, canary_t: float
) -> TrackPair:
    """Stable and canary over the same interval; a ``MetricsError`` when either cannot be read."""
    stable, exact_s = track_sample(source, scope, slo, STABLE, window_s=window_s, t=stable_t)
    canary, exact_c = track_sample(source, scope, slo, CANARY, window_s=window_s, t=canary_t)
    return TrackPair(stable=stable, canary=canary, slo_exact=exact_s and exact_c)
