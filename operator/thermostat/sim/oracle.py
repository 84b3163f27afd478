"""The clairvoyant replica oracle, and the peak provisioning the static baseline uses.

The oracle knows the arrivals and their sizes. It counts work in decode-token equivalents
(generated tokens, plus prompt tokens weighted by peak decode over prefill throughput) and needs
one number, a replica's capacity in work per second, which it finds by replaying the trace itself
(``calibrate_capacity``).
At each period it runs the fewest replicas that carry the heaviest 1-minute window from now until
a replica started now would be ready (one cold start plus a period ahead): each replica is started
one cold start before it is needed and stopped once the requests it served are done (one SLO
target after the window's arrivals). It is the lower bound on
energy of any replica policy at exact quality, up to the capacity measurement's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from thermostat.api.spec import RoutedModelSpec
from thermostat.control import Observation, Profile
from thermostat.sim.trace import Trace
from thermostat.sim.truth import Truth

CALIBRATION_STEPS = 6  # bisection steps: capacity resolved to 1/64 of the search range


def calibrate_capacity(trace: Trace, spec: RoutedModelSpec, profile: Profile, config: object) -> float:
    """The largest per-replica capacity (work/s) at which the oracle still meets every window of ``trace``.

    Clairvoyance includes this: the oracle is tuned on the very arrivals it serves (bisection on
    the capacity; fewer replicas as it grows), so no replica policy at T = 1 meets every window
    with less energy, up to the bisection's resolution.
    """
    from thermostat.sim.run import SimConfig, simulate

    assert isinstance(config, SimConfig)
    peak = profile.tokens_per_s(1.0, profile.max_batch) * config.truth.capacity_factor
    lo, hi = 0.2 * peak, 1.2 * peak
    for _ in range(CALIBRATION_STEPS):
        capacity = 0.5 * (lo + hi)
        needs = replica_needs(trace, capacity, spec, profile, config.truth)
        first = int(needs[: int(config.truth.cold_start_s) + 1].max())
        controller = oracle(trace, spec, capacity, profile, config.truth)
        result = simulate(trace, spec, profile, controller, replace(config, initial_replicas=first))
        ok = result.metrics["slo_attainment_windows"] >= 1.0 and result.metrics["requests_shed"] == 0
        lo, hi = (capacity, hi) if ok else (lo, capacity)
    return lo


@dataclass
class OracleController:
    """Knows the arrivals; see the module docstring."""

    needs: np.ndarray  # replicas needed for the 1-minute window starting at each second
    horizon_s: float  # cold start + one period
    lookback_s: float  # requests that arrived this long ago may still be in service
    name: str = "oracle"
    shadow_fraction: float = 0.0

    def decide(self, observation: Observation, now: float) -> tuple[int, float]:
        start = max(0, int(now - self.lookback_s))
        window = self.needs[start : int(now) + math.ceil(self.horizon_s) + 1]
        return (int(window.max()) if len(window) else 1), 1.0


def work_units(trace: Trace, profile: Profile, truth: Truth) -> np.ndarray:
    """Each request's work in decode-token equivalents at T = 1."""
    prompt_weight = profile.tokens_per_s(1.0, profile.max_batch) / truth.prefill_tokens_per_s
    return np.asarray(trace.generated_tokens + prompt_weight * trace.context_tokens)


def replica_needs(
    trace: Trace, capacity_tokens_per_s: float, spec: RoutedModelSpec, profile: Profile, truth: Truth
) -> np.ndarray:
    """Replicas needed for the 1-minute window starting at each second of the trace."""
    work = work_units(trace, profile, truth)
    seconds = math.ceil(trace.duration_s) + 1
    per_second = np.bincount(trace.arrival_s.astype(np.int64), weights=work, minlength=seconds)
    cumulative = np.concatenate([[0.0], np.cumsum(per_second)])
    ends = np.minimum(np.arange(seconds) + 60, seconds)
    # Windows cut by the end of the trace are rates over what is left (at least 15 s), not over 60 s.
    span = np.maximum(ends - np.arange(seconds), 15).astype(np.float64)
    window_rate = (cumulative[ends] - cumulative[:seconds]) / span
    needs = np.ceil(window_rate / capacity_tokens_per_s - 1e-9).astype(np.int64)
    return np.asarray(np.clip(needs, spec.replicas.min, spec.replicas.max), dtype=np.int64)


def oracle(
    trace: Trace, spec: RoutedModelSpec, capacity_tokens_per_s: float, profile: Profile, truth: Truth
) -> OracleController:
    """The oracle for this trace."""
    needs = replica_needs(trace, capacity_tokens_per_s, spec, profile, truth)
    return OracleController(
        needs, horizon_s=truth.cold_start_s + spec.behavior.period_seconds, lookback_s=spec.slo.target_seconds
    )


def peak_replicas(trace: Trace, spec: RoutedModelSpec, capacity: float, profile: Profile, truth: Truth) -> int:
    """Static peak provisioning: the most replicas any 1-minute window of the trace needs."""
    return int(replica_needs(trace, capacity, spec, profile, truth).max())
