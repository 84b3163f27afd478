"""The law's per-replica response model: latency, capacity and power as functions of T and load.

Seeded from the routing profile and scaled by corrections learned online (``LawMemory``):
``latency_scale`` (observed over predicted latency quantile: prefill, metric interpolation and a
slower device all land there) and ``power_scale`` (on the dynamic part of power).
and ``capacity_scale`` (> 1: replicas saturate earlier than the profile says). The two are told apart
by where they are seen (``learning``): the latency scale below the queueing knee, the capacity above
it; so the capacity correction moves only the saturation point (utilisation and batch), never the
latency of a lone request. The shapes, stated once:

- A replica is a continuous-batching server. Under a per-replica demand of ``x`` tokens/s it runs
  at the batch ``b`` whose throughput matches ``x`` (Little's law); ``ρ = x / tokens_per_s(T, b_max)``.
- Mean request latency = tokens per request × step time at ``b``; the SLO quantile is that times a
  spread factor (the tail of the token-count distribution), times a queueing knee ``1 + ρ⁸/(1 − ρ)``.
- Power = idle + (TDP − idle) × power_scale × u^γ, with u the FLOP rate over the replica's peak
  (H100 SXM: idle ~90 W, TDP 700 W; see docs/simulator.md for sources).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thermostat.control.profile import Profile

QUANTILE_SPREAD = 2.2  # p95 over mean of generated tokens per request, a prior the correction refines
PREFILL_STEPS = 8.0  # time to first token in decode steps (prefill + scheduling), a prior for TTFT SLOs
KNEE_POWER = 8  # a many-slot batching server queues only near saturation (Erlang-C-like), not from ρ ≈ 0.5
OVERLOAD_LATENCY_S = 1e6  # what "the queue grows without bound" predicts


@dataclass(frozen=True)
class PowerPrior:
    """H100-like power: idle and full-load watts and the concavity of power in FLOP utilisation."""

    idle_w: float = 90.0
    max_w: float = 700.0
    exponent: float = 0.7


@dataclass(frozen=True)
class ResponseModel:
    """One replica's predicted behaviour, from the profile and the learned corrections."""

    profile: Profile
    capacity_scale: float = 1.0
    latency_scale: float = 1.0
    power_scale: float = 1.0
    tokens_per_request: float = 256.0
    metric: str = "RequestLatency"  # the SLO's metric (SloMetric value)
    power: PowerPrior = PowerPrior()

    def peak_tokens_per_s(self, temperature: float) -> float:
        """Most decode tokens/s one replica serves at ``temperature``, corrected."""
        return self.profile.tokens_per_s(temperature, self.profile.max_batch) / self.capacity_scale

    def utilisation(self, rate: float, temperature: float) -> float:
        """ρ: demanded tokens/s over the replica's peak at ``temperature``."""
        return rate * self.tokens_per_request / self.peak_tokens_per_s(temperature)

    def latency_s(self, rate: float, temperature: float) -> float:
        """Predicted SLO-quantile request latency at ``rate`` requests/s on one replica."""
        rho = self.utilisation(rate, temperature)
        if rho >= 1.0:
            return OVERLOAD_LATENCY_S
        batch = self._batch_for(rate * self.tokens_per_request * self.capacity_scale, temperature)
        step_s = batch / self.profile.tokens_per_s(temperature, batch)
        knee = 1.0 + rho**KNEE_POWER / (1.0 - rho)
        if self.metric == "TimePerOutputToken":
            return self.latency_scale * step_s * knee
        steps = PREFILL_STEPS if self.metric == "TimeToFirstToken" else self.tokens_per_request
        return self.latency_scale * QUANTILE_SPREAD * steps * step_s * knee

    def _batch_for(self, tokens_per_s: float, temperature: float) -> float:
        """Batch size whose throughput (profile units) equals ``tokens_per_s``; at least 1.

        The profile's throughput is piecewise linear and increasing in batch size, so it inverts exactly.
        """
        batches, rates = self.profile.batch_table(temperature)
        previous_b, previous_r = 0.0, 0.0
        for b, r in zip(batches, rates, strict=True):
            if r >= tokens_per_s:
                return max(1.0, previous_b + (b - previous_b) * (tokens_per_s - previous_r) / (r - previous_r))
            previous_b, previous_r = b, r
        return batches[-1]

    def capacity(self, temperature: float, latency_target_s: float) -> float:
        """Largest per-replica request rate whose predicted latency is within ``latency_target_s``."""
        top = self.peak_tokens_per_s(temperature) / self.tokens_per_request
        lo, hi = 0.0, top
        for _ in range(20):
            mid = 0.5 * (lo + hi)
            if self.latency_s(mid, temperature) <= latency_target_s:
                lo = mid
            else:
                hi = mid
        return lo

    def replica_power_w(self, rate: float, temperature: float) -> float:
        """Predicted GPU power of one ready replica serving ``rate`` requests/s."""
        full = self.profile.tokens_per_s(1.0, self.profile.max_batch)
        flop_rate = rate * self.tokens_per_request * self.profile.flops_fraction(temperature)
        util = min(1.0, flop_rate / full)
        dynamic = (self.power.max_w - self.power.idle_w) * math.pow(util, self.power.exponent)
        return self.power.idle_w + self.power_scale * dynamic

    def total_power_w(self, rate: float, temperature: float, ready: int, starting: int = 0) -> float:
        """Predicted power of ``ready`` replicas sharing ``rate`` plus ``starting`` idle ones."""
        serving = max(ready, 1)
        return serving * self.replica_power_w(rate / serving, temperature) + starting * self.power.idle_w

    def joules_per_token_at_peak(self, temperature: float) -> float:
        """Energy per generated token of one replica running flat out at ``temperature``."""
        peak = self.peak_tokens_per_s(temperature)
        return self.replica_power_w(peak / self.tokens_per_request, temperature) / peak
