"""The run's outcome in figures: what ``summary.json`` holds, computed from the recorded run.

Times are seconds from the start of the load. Decision-based figures come from the decision log
(every decision the operator made during the run, with the observation it saw), so they count
control periods, not wall time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thermostat.api.spec import RoutedModelSpec
from thermostat.control.profile import quality_loss_percent
from thermostat_stack.capacity import Capacity
from thermostat_stack.loaddriver import LoadStats
from thermostat_stack.recorder import DecisionLog, Sample
from thermostat_stack.scenarios import OfferedLoad


@dataclass
class RunRecord:
    """Everything a finished run leaves for its report."""

    name: str
    namespace: str
    spec: RoutedModelSpec
    load: OfferedLoad
    capacity: Capacity
    stats: LoadStats
    samples: list[Sample]
    decisions: list[DecisionLog]
    events: list[dict[str, Any]] = field(default_factory=list)
    runtime_requests_total: float | None = None
    runtime_requests_by_code: dict[str, float] = field(default_factory=dict)
    final_status: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def slo_attainment(
    samples: list[Sample], *, target_s: float, window_s: float, end_s: float
) -> tuple[float | None, int]:
    """Share of consecutive SLO windows whose quantile (read at the window's end) met the target, and their count."""
    met = known = 0
    edge = window_s
    while edge <= end_s + 1e-9:
        before = [s for s in samples if s.t_s <= edge and s.latency_s is not None]
        if before and edge - before[-1].t_s <= window_s / 2:
            known += 1
            met += before[-1].latency_s <= target_s  # type: ignore[operator]
        edge += window_s
    return (met / known if known else None), known


def first_temperature_drop(decisions: list[DecisionLog], after_s: float | None) -> DecisionLog | None:
    """The first decision at or after ``after_s`` that lowered the routing temperature."""
    previous: DecisionLog | None = None
    for decision in decisions:
        lowered = previous is not None and decision.routing_temperature < previous.routing_temperature - 1e-9
        if lowered and (after_s is None or decision.t_s >= after_s):
            return decision
        previous = decision
    return None


def first_scale_up(decisions: list[DecisionLog], after_s: float | None) -> DecisionLog | None:
    """The first decision at or after ``after_s`` that raised the replica count."""
    previous: DecisionLog | None = None
    for decision in decisions:
        if (
            previous is not None
            and decision.replicas > previous.replicas
            and (after_s is None or decision.t_s >= after_s)
        ):
            return decision
        previous = decision
    return None


def quality_loss_percent_mean(samples: list[Sample]) -> float | None:
    """Time-averaged quality loss, percent, from the shadow KL of each second's SLO window (DESIGN §3).

    Seconds without a shadow measurement in their window are left out (they say nothing); at T = 1 the
    shadow's KL is 0, which counts as exact.
    """
    known = [s.quality_kl_nats for s in samples if s.quality_kl_nats is not None]
    return sum(quality_loss_percent(kl) for kl in known) / len(known) if known else None


def _min(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def summarize(run: RunRecord) -> dict[str, Any]:
    """The figures of ``summary.json`` (the issue's keys first, then context)."""
    slo = run.spec.slo
    attainment, windows = slo_attainment(
        run.samples, target_s=slo.target_seconds, window_s=slo.window_seconds, end_s=run.load.duration_s
    )
    burst = run.load.burst_start_s
    drop = first_temperature_drop(run.decisions, burst)
    scale_up = first_scale_up(run.decisions, burst)
    temperatures = [s.temperature for s in run.samples] + [
        d.routing_temperature for d in run.decisions if d.changed and d.applied
    ]
    replicas = [s.replicas for s in run.samples if s.replicas is not None] + [d.replicas for d in run.decisions]
    latencies = [s.latency_s for s in run.samples if s.latency_s is not None]
    budget = run.spec.budget.power_watts if run.spec.budget else None
    quality = run.final_status.get("quality") or {}
    return {
        "requests_total": run.stats.sent,
        "requests_ok": run.stats.ok,
        "requests_rejected": run.stats.rejected,
        "requests_failed": run.stats.failed,
        "slo_attainment_windows": attainment,
        "temperature_min": _min(temperatures),
        "replicas_max": max(replicas) if replicas else None,
        "burst_start_s": burst,
        "first_temperature_drop_s": drop.t_s if drop else None,
        "first_scale_up_s": scale_up.t_s if scale_up else None,
        "decisions": len(run.decisions),
        "quality_loss_percent_mean": quality_loss_percent_mean(run.samples),
        "operating_temperature": quality.get("operatingTemperature"),
        "capacity_rps_exact": run.capacity.exact_rps,
        "capacity_rps_tmin": run.capacity.tmin_rps,
        # T_min over T = 1: the median of paired, interleaved rounds, and the smallest and largest pair.
        "capacity_gain": run.capacity.gain,
        "capacity_gain_min": run.capacity.spread[0],
        "capacity_gain_max": run.capacity.spread[1],
        "capacity_pairs": len(run.capacity.ratios),
        # Context for a reader of the file.
        "t_min": run.capacity.t_min,
        "slo_windows": windows,
        "slo_windows_met": None if attainment is None else round(attainment * windows),
        "slo_target_s": slo.target_seconds,
        "slo_quantile": slo.quantile,
        "slo_window_s": slo.window_seconds,
        "slo_margin_fraction": slo.margin_fraction,
        "latency_quantile_max_s": max(latencies) if latencies else None,
        "latency_quantile_last_s": latencies[-1] if latencies else None,
        "power_budget_w": budget,
        "power_source": next((s.power_source for s in reversed(run.samples) if s.power_source), None),
        "requests_failure_reasons": dict(run.stats.failure_reasons),
        "runtime_requests_total": run.runtime_requests_total,
        "runtime_requests_by_code": run.runtime_requests_by_code,
        "load": run.load.name,
        "load_description": run.load.description,
        "load_duration_s": run.load.duration_s,
        "offered_mean_rps": run.load.mean_rps,
        "control_period_s": run.spec.behavior.period_seconds,
        "quality_loss_percent_mean_operator": quality.get("lossPercentMean"),
        "quality_loss_percent_budget": run.spec.quality.max_quality_loss_percent,
        "shadow_fraction": run.spec.quality.shadow_fraction,
    }
