"""The metrics pipeline as the operator sees it: Prometheus scrapes every 15 s, rate and
histogram_quantile over windows, so observations are late and smoothed as in a real cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thermostat.control.signals import Idle, Missing, Reading, SignalValue
from thermostat.control.types import Observation
from thermostat.sim.engine import TPOT_BUCKETS_S, Cluster

RATE_WINDOW_S = 60.0  # rate(...[1m])


@dataclass(frozen=True)
class Scrape:
    """Counter and gauge values at one scrape."""

    time: float
    requests: float  # completed + shed (thermostat_requests_total over all codes)
    tokens: float
    energy_j: float
    histograms: dict[str, np.ndarray]
    queue_depth: int
    temperature: float
    replicas: int
    ready: int


def histogram_quantile(q: float, counts: np.ndarray, bounds: np.ndarray) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket; None without samples."""
    total = float(counts.sum())
    if total <= 0:
        return None
    cumulative = np.cumsum(counts)
    rank = q * total
    index = int(np.searchsorted(cumulative, rank, side="left"))
    if index >= len(bounds):  # in the +Inf bucket: Prometheus answers the highest finite bound
        return float(bounds[-1])
    lower = 0.0 if index == 0 else float(bounds[index - 1])
    below = 0.0 if index == 0 else float(cumulative[index - 1])
    inside = float(counts[index])
    return lower + (float(bounds[index]) - lower) * (rank - below) / inside if inside else lower


@dataclass
class Telemetry:
    """Scrapes the cluster and answers queries the way the operator's PromQL would."""

    scrape_interval_s: float = 15.0
    scrapes: list[Scrape] = field(default_factory=list)

    def scrape(self, cluster: Cluster, now: float) -> None:
        replicas, ready = cluster.counts()
        self.scrapes.append(
            Scrape(
                time=now,
                requests=float(cluster.served + cluster.shed_count),
                tokens=cluster.generated_tokens,
                energy_j=cluster.energy_j,
                histograms={k: v.copy() for k, v in cluster.histograms.items()},
                queue_depth=cluster.queue_depth(),
                temperature=cluster.temperature,
                replicas=replicas,
                ready=ready,
            )
        )

    def _at_or_before(self, t: float) -> Scrape:
        for scrape in reversed(self.scrapes):
            if scrape.time <= t + 1e-9:
                return scrape
        return self.scrapes[0]

    def observe(self, cluster: Cluster, now: float, *, quantile: float, window_s: float, metric: str) -> Observation:
        """The Observation the operator would build at ``now`` from the latest scrape."""
        last = self._at_or_before(now)
        rate_from = self._at_or_before(last.time - RATE_WINDOW_S)
        span = last.time - rate_from.time
        win_from = self._at_or_before(last.time - window_s)
        bounds = TPOT_BUCKETS_S if metric == "TimePerOutputToken" else cluster.latency_buckets_s
        latency = histogram_quantile(quantile, last.histograms[metric] - win_from.histograms[metric], bounds)
        power_from = self._at_or_before(last.time - self.scrape_interval_s)
        power_span = last.time - power_from.time
        replicas, ready = cluster.counts()
        requests = (last.requests - rate_from.requests) / span if span > 0 else None
        tokens = (last.tokens - rate_from.tokens) / span if span > 0 else None
        power = (last.energy_j - power_from.energy_j) / power_span if power_span > 0 else None
        unscraped = Missing("NoData: no scrape spans the window yet")
        return Observation(
            time=last.time,
            routing_temperature=cluster.temperature,
            replicas=replicas,
            ready_replicas=ready,
            window_s=window_s,
            latency_s=_latency_signal(latency, requests, last.time),
            request_rate=unscraped if requests is None else Reading(requests, last.time),
            served_rate=Missing("not simulated"),
            shed_rate=Missing("not simulated"),
            token_rate=unscraped if tokens is None else Reading(tokens, last.time),
            power_w=unscraped if power is None else Reading(power, last.time),
            energy_rate_w=Missing("not simulated"),
            quality_kl_nats=Missing("not simulated"),
            shadow_token_rate=Missing("not simulated"),
            quality_agreement=Missing("not simulated"),
            queue_depth=Reading(float(last.queue_depth), last.time),
            power_source="estimate",
        )


def _latency_signal(latency: float | None, requests: float | None, time: float) -> SignalValue:
    """The quantile as the operator's metrics layer classifies it: no request in the window is Idle."""
    if latency is not None:
        return Reading(latency, time)
    if requests == 0.0:
        return Idle(time)
    return Missing("NotANumber: no completion in the window")
