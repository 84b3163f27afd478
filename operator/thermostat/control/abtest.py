"""The A/B test of a rollout step, pure: canary against stable over the same interval.

Four figures per track: the share of requests within the SLO (a binomial: Wilson interval), the
error rate (binomial), the shadow-measured quality loss (a normal interval of the mean per-token KL
over the shadow tokens) and the energy per request (reported, not judged). The canary fails when the
interval lies wholly beyond a tolerance (more requests late than stable, more errors, a quality
loss over the budget), and passes otherwise; whenever a track has too few requests, or the canary
too few shadow tokens to measure its loss, the result is *inconclusive*, never a pass or a failure.

The Wilson interval is written out (ten lines) because the operator does not depend on scipy; the
unit test checks it against ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from statistics import NormalDist

from thermostat.api.spec import RolloutAnalysis


class Result(StrEnum):
    """What one analysis says."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    METRICS_UNAVAILABLE = "MetricsUnavailable"


@dataclass(frozen=True)
class TrackSample:
    """One track's counter increases over the interval (from Prometheus, or the simulator)."""

    requests: float  # requests answered, every code
    within_slo: float  # of the timed ones, within the SLO target (the bucket at the target, or interpolated)
    errors: float  # answered 5xx
    timed: float | None = None  # requests in the SLO's latency histogram; None: every request
    shadow_tokens: float = 0.0
    shadow_kl_nats: float = 0.0  # sum over shadow tokens of KL(exact || routed)
    shadow_kl_sq_nats: float | None = None  # sum of squared per-token KL; None: the runtime does not export it
    energy_j: float | None = None
    temperature: float = 1.0  # the track's routing temperature (1: exact, nothing to lose)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class TrackJudged:
    """One track's figures and their intervals."""

    sample: TrackSample
    slo_share: float | None
    slo_interval: Interval | None
    error_rate: float | None
    error_interval: Interval | None
    loss_percent: float | None = None
    loss_interval: Interval | None = None


@dataclass(frozen=True)
class Analysis:
    """The verdict, why, and the figures behind it."""

    result: Result
    message: str
    stable: TrackJudged | None = None
    canary: TrackJudged | None = None
    findings: tuple[str, ...] = field(default_factory=tuple)


def z_value(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(successes: float, trials: float, z: float) -> Interval:
    """The Wilson score interval of a binomial share (counts rounded: Prometheus' increase() extrapolates)."""
    n, k = round(trials), min(round(successes), round(trials))
    if n <= 0:
        return Interval(0.0, 1.0)
    p = k / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def newcombe(p1: float, i1: Interval, p2: float, i2: Interval) -> Interval:
    """Newcombe's hybrid score interval of the difference p1 − p2 from the two Wilson intervals."""
    d = p1 - p2
    return Interval(d - math.hypot(p1 - i1.low, i2.high - p2), d + math.hypot(i1.high - p1, p2 - i2.low))


def loss_percent(kl_nats: float) -> float:
    """Quality loss in percent from the mean per-token KL (DESIGN §3)."""
    return 100.0 * math.expm1(max(kl_nats, 0.0))


def loss_interval(sample: TrackSample, z: float) -> Interval | None:
    """A normal interval of the mean per-token KL, as loss percent; None without the squared sum."""
    n = sample.shadow_tokens
    if n <= 1 or sample.shadow_kl_sq_nats is None:
        return None
    mean = sample.shadow_kl_nats / n
    variance = max(sample.shadow_kl_sq_nats / n - mean * mean, 0.0)
    half = z * math.sqrt(variance / n)
    return Interval(loss_percent(mean - half), loss_percent(mean + half))


def judge_track(sample: TrackSample, z: float) -> TrackJudged:
    n, timed = sample.requests, sample.requests if sample.timed is None else sample.timed
    share = sample.within_slo / timed if timed > 0 else None
    errors = sample.errors / n if n > 0 else None
    exact = sample.temperature >= 1.0 - 1e-9
    loss = 0.0 if exact else (loss_percent(sample.shadow_kl_nats / sample.shadow_tokens)
                              if sample.shadow_tokens > 0 else None)  # fmt: skip
    return TrackJudged(
        sample=sample,
        slo_share=share,
        slo_interval=wilson(sample.within_slo, timed, z) if timed > 0 else None,
        error_rate=errors,
        error_interval=wilson(sample.errors, n, z) if n > 0 else None,
        loss_percent=loss,
        loss_interval=Interval(0.0, 0.0) if exact else loss_interval(sample, z),
    )


def analyse(stable: TrackSample, canary: TrackSample, rules: RolloutAnalysis, budget_percent: float) -> Analysis:
    """Canary against stable: Failed, Passed or Inconclusive, with the figures and why."""
    z = z_value(rules.confidence)
    s, c = judge_track(stable, z), judge_track(canary, z)
    low = [f"{name} {t.sample.requests:.0f} requests" for name, t in (("stable", s), ("canary", c))
           if t.sample.requests < rules.min_requests]  # fmt: skip
    if low:
        return Analysis(Result.INCONCLUSIVE, f"too little traffic: {', '.join(low)} (need {rules.min_requests})", s, c)
    checks = [_slo_check(s, c, rules), _error_check(s, c, rules), _quality_check(c, rules, budget_percent)]
    failed = [text for verdict, text in checks if verdict == Result.FAILED]
    unsure = [text for verdict, text in checks if verdict == Result.INCONCLUSIVE]
    findings = tuple(text for _, text in checks)
    if failed:
        return Analysis(Result.FAILED, "; ".join(failed), s, c, findings)
    if unsure:
        return Analysis(Result.INCONCLUSIVE, "; ".join(unsure), s, c, findings)
    return Analysis(Result.PASSED, "; ".join(findings), s, c, findings)


def _difference(p1: float | None, i1: Interval | None, p2: float | None, i2: Interval | None) -> Interval:
    """Newcombe's interval; both tracks have requests here (``analyse`` checked ``minRequests``)."""
    if p1 is None or i1 is None or p2 is None or i2 is None:
        raise ValueError("an A/B difference needs requests on both tracks")
    return newcombe(p1, i1, p2, i2)


def _slo_check(s: TrackJudged, c: TrackJudged, rules: RolloutAnalysis) -> tuple[Result, str]:
    diff = _difference(c.slo_share, c.slo_interval, s.slo_share, s.slo_interval)
    tol = rules.slo_tolerance_points / 100.0
    text = (f"within SLO canary {100 * (c.slo_share or 0):.1f}% vs stable {100 * (s.slo_share or 0):.1f}% "
            f"(difference [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}] points, "
            f"tolerance {rules.slo_tolerance_points:g})")  # fmt: skip
    return (Result.FAILED if diff.high < -tol else Result.PASSED), text


def _error_check(s: TrackJudged, c: TrackJudged, rules: RolloutAnalysis) -> tuple[Result, str]:
    diff = _difference(c.error_rate, c.error_interval, s.error_rate, s.error_interval)
    tol = rules.error_tolerance_points / 100.0
    text = (f"errors canary {100 * (c.error_rate or 0):.2f}% vs stable {100 * (s.error_rate or 0):.2f}% "
            f"(difference [{100 * diff.low:+.2f}, {100 * diff.high:+.2f}] points)")  # fmt: skip
    # Errors are rare: a failure needs evidence; their absence in a small sample is no doubt.
    return (Result.FAILED if diff.low > tol else Result.PASSED), text


def _quality_check(c: TrackJudged, rules: RolloutAnalysis, budget: float) -> tuple[Result, str]:
    tokens = c.sample.shadow_tokens
    if c.sample.temperature >= 1.0 - 1e-9:
        return Result.PASSED, "canary exact (T 1): no quality loss"
    if tokens < rules.min_shadow_tokens:
        return Result.INCONCLUSIVE, f"too few canary shadow tokens ({tokens:.0f}, need {rules.min_shadow_tokens})"
    if c.loss_interval is None:
        return Result.INCONCLUSIVE, "no interval over the shadow tokens (thermostat_shadow_kl_sq_nats_total missing)"
    text = (f"canary quality loss {c.loss_percent:.2f}% [{c.loss_interval.low:.2f}, {c.loss_interval.high:.2f}] "
            f"over {tokens:.0f} shadow tokens, budget {budget:.2f}%")  # fmt: skip
    # The law puts the operating point at the budget's edge: only a loss surely over it fails.
    return (Result.FAILED if c.loss_interval.low > budget else Result.PASSED), text
