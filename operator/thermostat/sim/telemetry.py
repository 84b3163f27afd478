"""The metrics pipeline as the operator sees it: Prometheus scrapes every 15 s, rate and
histogram_quantile over windows, so observations are late and smoothed as in a real cluster.

Each signal reaches the law as the metrics layer delivers it (DESIGN §4): a ``Reading``, ``Idle``
(fresh series, nothing in the window: a known zero) or ``Missing`` (no scrape to compute it from yet).
"""

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
    served: float  # thermostat_requests_total{code="200"}
    shed: float  # thermostat_requests_total{code="429"}
    tokens: float
    energy_j: float
    shadow_tokens: float
    shadow_kl_nats: float
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


def _rate(value: float, span: float, time: float) -> SignalValue:
    """A counter's rate as the metrics layer returns it: Idle for a fresh zero, Missing without a span."""
    if span <= 0:
        return Missing("NoData: fewer than two scrapes in the rate window")
    return Reading(value / span, time) if value > 0 else Idle(time)


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
                served=float(cluster.served),
                shed=float(cluster.shed_count),
                tokens=cluster.generated_tokens,
                energy_j=cluster.energy_j,
                shadow_tokens=cluster.shadow_tokens,
                shadow_kl_nats=cluster.shadow_kl_nats,
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
        counts = last.histograms[metric] - win_from.histograms[metric]
        latency = histogram_quantile(quantile, counts, bounds)
        power_from = self._at_or_before(last.time - self.scrape_interval_s)
        power_span = last.time - power_from.time
        served, shed = last.served - rate_from.served, last.shed - rate_from.shed
        shadow_tokens = last.shadow_tokens - rate_from.shadow_tokens
        kl = last.shadow_kl_nats - rate_from.shadow_kl_nats
        power: SignalValue = (
            Reading((last.energy_j - power_from.energy_j) / power_span, last.time)
            if power_span > 0
            else Missing("NoData: one scrape so far")
        )
        replicas, ready = cluster.counts()
        return Observation(
            time=last.time,
            routing_temperature=cluster.temperature,
            replicas=replicas,
            ready_replicas=ready,
            window_s=window_s,
            latency_s=Idle(last.time) if latency is None else Reading(latency, last.time),
            request_rate=_rate(served + shed, span, last.time),
            served_rate=_rate(served, span, last.time),
            shed_rate=_rate(shed, span, last.time),
            token_rate=_rate(last.tokens - rate_from.tokens, span, last.time),
            power_w=power,
            energy_rate_w=power,
            quality_kl_nats=Reading(kl / shadow_tokens, last.time) if shadow_tokens > 0 else Idle(last.time),
            shadow_token_rate=_rate(shadow_tokens, span, last.time),
            quality_agreement=Missing("NotSimulated: the simulator models KL only"),
            queue_depth=Reading(float(last.queue_depth), last.time),
            power_source="estimate",
        )
