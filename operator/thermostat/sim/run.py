"""One simulation: a trace through the cluster under one controller, and the figures it yields."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thermostat.api.spec import RoutedModelSpec
from thermostat.control import Profile
from thermostat.control.signals import reading_value
from thermostat.sim.controllers import Controller
from thermostat.sim.engine import LATENCY_BUCKETS_S, Cluster, with_slo_bucket
from thermostat.sim.telemetry import Telemetry
from thermostat.sim.trace import Trace
from thermostat.sim.truth import ReplicaPhysics, Truth

ATTAINMENT_WINDOW_S = 60.0
MAX_DRAIN_S = 3600.0


@dataclass(frozen=True)
class SimConfig:
    """How the cluster and the metrics pipeline are simulated."""

    truth: Truth = field(default_factory=Truth)
    dt_s: float = 0.1
    scrape_interval_s: float = 15.0
    control_offset_s: float = 5.0  # control runs this long after a scrape: observations are that old or older
    initial_replicas: int | None = None
    calibration_s: float = 900.0  # length of each oracle capacity-calibration run
    # Request-latency/TTFT histogram buckets; None = the runtime's (DESIGN §3). Finer ones show
    # what coarse buckets cost the law.
    latency_buckets_s: tuple[float, ...] | None = None
    slo_bucket: bool = True  # the SLO target is a bucket boundary, as the runtime makes it (DESIGN §3)
    seed: int = 0  # which requests are shadowed


@dataclass
class SimResult:
    """The figures of one run (``metrics``) and its time series for plots (``series``)."""

    name: str
    metrics: dict[str, float]
    series: dict[str, list[float]]


def simulate(
    trace: Trace, spec: RoutedModelSpec, profile: Profile, controller: Controller, config: SimConfig | None = None
) -> SimResult:
    """Replay ``trace`` under ``controller`` and measure SLO attainment, shedding, energy and quality."""
    config = config or SimConfig()
    physics = ReplicaPhysics(profile, config.truth)
    buckets = LATENCY_BUCKETS_S if config.latency_buckets_s is None else np.array(config.latency_buckets_s)
    if config.slo_bucket:
        buckets = with_slo_bucket(buckets, spec.slo.target_seconds)
    cluster = Cluster(
        physics,
        trace,
        max_replicas=spec.replicas.max,
        latency_buckets_s=buckets,
        shadow_fraction=controller.shadow_fraction,
        seed=config.seed,
    )
    cluster.start(config.initial_replicas or spec.replicas.min, 0.0, ready=True)
    telemetry = Telemetry(config.scrape_interval_s)
    series: dict[str, list[float]] = {
        k: [] for k in ("time", "load", "latency", "replicas", "ready", "temperature", "power")
    }
    state = {"replica_changes": 0.0, "temperature_changes": 0.0, "quality_s": 0.0, "violation_s": 0.0}
    limit = spec.budget.power_watts if spec.budget is not None else None
    dt, period = config.dt_s, float(spec.behavior.period_seconds)
    t, next_scrape, next_control = 0.0, 0.0, config.control_offset_s
    last_energy = 0.0
    while t < trace.duration_s or _busy(cluster):
        if t > trace.duration_s + MAX_DRAIN_S:
            raise RuntimeError("the cluster did not drain within an hour after the trace; is a replica stuck?")
        if t >= next_scrape - 1e-9:
            telemetry.scrape(cluster, t)
            interval_power = (cluster.energy_j - last_energy) / config.scrape_interval_s if t > 0 else 0.0
            if limit is not None and interval_power > limit and t <= trace.duration_s:
                state["violation_s"] += config.scrape_interval_s
            _record(series, telemetry, cluster=cluster, now=t, power=interval_power, trace=trace, spec=spec)
            last_energy = cluster.energy_j
            next_scrape += config.scrape_interval_s
        if t >= next_control - 1e-9:
            _control(controller, telemetry, cluster=cluster, spec=spec, profile=profile, now=t, state=state)
            next_control += period
        cluster.tick(t, dt)
        if t < trace.duration_s:
            state["quality_s"] += physics.quality_loss_percent(cluster.temperature) * dt
        t += dt
    return SimResult(controller.name, _figures(trace, spec, cluster, state), series)


def _busy(cluster: Cluster) -> bool:
    return cluster.next_arrival < len(cluster.trace) or cluster.queue_depth() > 0 or bool((cluster.slot_req >= 0).any())


def _control(
    controller: Controller,
    telemetry: Telemetry,
    *,
    cluster: Cluster,
    spec: RoutedModelSpec,
    profile: Profile,
    now: float,
    state: dict[str, float],
) -> None:
    observation = telemetry.observe(
        cluster, now, quantile=spec.slo.quantile, window_s=float(spec.slo.window_seconds), metric=str(spec.slo.metric)
    )
    replicas, temperature = controller.decide(observation, now)
    temperature = min(1.0, max(profile.t_min, temperature))  # the runtime clamps into [T_min, 1]
    if replicas != observation.replicas:
        state["replica_changes"] += 1
    if abs(temperature - cluster.temperature) > 1e-9:
        state["temperature_changes"] += 1
    cluster.temperature = temperature
    cluster.set_replicas(replicas, now)


def _record(
    series: dict[str, list[float]],
    telemetry: Telemetry,
    *,
    cluster: Cluster,
    now: float,
    power: float,
    trace: Trace,
    spec: RoutedModelSpec,
) -> None:
    observation = telemetry.observe(
        cluster, now, quantile=spec.slo.quantile, window_s=float(spec.slo.window_seconds), metric=str(spec.slo.metric)
    )
    latency = reading_value(observation.latency_s)
    arrived = np.searchsorted(trace.arrival_s, [now - 60.0, now])
    replicas, ready = cluster.counts()
    for key, value in (
        ("time", now),
        ("load", float(arrived[1] - arrived[0]) / 60.0),
        ("latency", math.nan if latency is None else latency),
        ("replicas", float(replicas)),
        ("ready", float(ready)),
        ("temperature", cluster.temperature),
        ("power", power),
    ):
        series[key].append(value)


def request_latency_s(trace: Trace, cluster: Cluster, metric: str) -> np.ndarray:
    """Each request's latency under the SLO's metric; +inf for shed requests."""
    out = cluster.outcomes
    if metric == "TimeToFirstToken":
        latency = out.first_token_s - trace.arrival_s
    elif metric == "TimePerOutputToken":
        latency = (out.completion_s - out.first_token_s) / np.maximum(trace.generated_tokens - 1.0, 1.0)
    else:
        latency = out.completion_s - trace.arrival_s
    return np.where(out.shed, np.inf, latency)


def _figures(trace: Trace, spec: RoutedModelSpec, cluster: Cluster, state: dict[str, float]) -> dict[str, Any]:
    latency = request_latency_s(trace, cluster, str(spec.slo.metric))
    target = spec.slo.target_seconds
    windows = np.floor(trace.arrival_s / ATTAINMENT_WINDOW_S).astype(np.int64)
    met, total = 0, 0
    bounds = np.flatnonzero(np.diff(windows)) + 1
    for chunk in np.split(latency, bounds):
        if len(chunk):
            total += 1
            met += int(np.quantile(chunk, spec.slo.quantile, method="inverted_cdf") <= target)
    served = max(cluster.served, 1)
    return {
        "slo_attainment_requests": float(np.mean(latency <= target)),
        "slo_attainment_windows": met / max(total, 1),
        "requests_shed": float(cluster.shed_count),
        "energy_kwh": cluster.energy_j / 3.6e6,
        "energy_j_per_request": cluster.energy_j / served,
        "quality_loss_mean": state["quality_s"] / max(trace.duration_s, 1e-9),  # percent, time-averaged
        "shadow_tokens": cluster.shadow_tokens,
        "budget_violation_s": state["violation_s"],
        "replica_changes": state["replica_changes"],
        "temperature_changes": state["temperature_changes"],
        "requests": float(len(trace)),
        "windows_missed": float(total - met),
    }
