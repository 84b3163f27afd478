"""Offered load as data: scenarios made of phases, and the seeded arrival schedule they generate.

A scenario is a list of phases, each a linear ramp of the offered request rate (requests per second)
over its duration, with one request shape (prompt tokens, generated tokens). Arrivals are a
non-homogeneous Poisson process drawn by thinning with a seeded generator, so a run's load is
reproducible. Built-in scenarios are sized from the measured capacity of one replica:

- ``burst``: a steady phase (at least four control periods, and one SLO window plus the scale-down
  stabilization window so the loop has settled) at 60 % of capacity at T = 1, a burst over one
  replica's capacity even at T_min (the temperature answers first, a second replica must follow and
  brings quality back), then recovery at the steady rate;
- ``diurnal``: a compressed day, night at 30 % of capacity rising to a peak that one replica at
  T = 1 cannot carry, and back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The burst must exceed one replica's capacity at the operating point (between T = 1 and T_min) and at
# the floor, so that the temperature alone cannot carry it and a second replica must follow: 1.5x the
# capacity at T = 1 and 1.1x that at T_min. Other jobs on shared cores move a replica's throughput by
# tens of percent within a minute, so a burst a few percent over the measurement may find a faster
# replica than the one measured (at 1.15x capacity at T = 1 the temperature alone carried it under a
# load average of 4). Two replicas at T = 1 still carry it (at most 1.8x).
BURST_OVER_EXACT = 1.5
BURST_OVER_TMIN = 1.1
BURST_MAX_OVER_EXACT = 1.8
STEADY_FRACTION = 0.6


@dataclass(frozen=True)
class RequestShape:
    """Length of the prompt and cap on the generated tokens of one request."""

    prompt_tokens: int = 48
    max_tokens: int = 24


@dataclass(frozen=True)
class Phase:
    """Offered load ramping linearly from ``start_rps`` to ``end_rps`` over ``duration_s``."""

    name: str
    duration_s: float
    start_rps: float
    end_rps: float


@dataclass(frozen=True)
class Arrival:
    """One request to send: when (seconds from the start of the load) and how long."""

    time_s: float
    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class Scenario:
    """A named sequence of phases with one request shape."""

    name: str
    phases: tuple[Phase, ...]
    shape: RequestShape = RequestShape()

    @property
    def duration_s(self) -> float:
        return sum(phase.duration_s for phase in self.phases)

    def phase_start_s(self, name: str) -> float | None:
        """When the first phase called ``name`` begins, in seconds from the start; None if absent."""
        elapsed = 0.0
        for phase in self.phases:
            if phase.name == name:
                return elapsed
            elapsed += phase.duration_s
        return None

    def rate_at(self, time_s: float) -> float:
        """Offered requests per second at ``time_s`` (0 outside the scenario)."""
        elapsed = 0.0
        for phase in self.phases:
            if time_s < elapsed + phase.duration_s:
                fraction = (time_s - elapsed) / phase.duration_s if phase.duration_s > 0 else 0.0
                return phase.start_rps + (phase.end_rps - phase.start_rps) * max(fraction, 0.0)
            elapsed += phase.duration_s
        return 0.0

    def arrivals(self, seed: int = 0) -> list[Arrival]:
        """The Poisson arrival schedule, by thinning a process at the peak rate."""
        peak = max(max(p.start_rps, p.end_rps) for p in self.phases)
        if peak <= 0:
            return []
        rng = np.random.default_rng(seed)
        out: list[Arrival] = []
        time_s = 0.0
        while True:
            time_s += float(rng.exponential(1.0 / peak))
            if time_s >= self.duration_s:
                return out
            if rng.random() * peak < self.rate_at(time_s):
                out.append(Arrival(time_s, self.shape.prompt_tokens, self.shape.max_tokens))


def slo_capacity(capacity_rps: float, *, target_s: float, quantile: float) -> float:
    """The rate one replica of ``capacity_rps`` carries with its latency quantile within ``target_s``.

    A batch-1 replica is a single server with a near-constant service time ``s = 1 / capacity``; its
    response-time quantile is ``s`` plus the M/D/1 waiting time's, approximated by an exponential tail
    of the mean wait ``ρ s / (2 (1 − ρ))`` with ``P(wait > 0) = ρ``. On a quiet machine (1.7 s a request,
    a 4.5 s margined target, p90) it is ~0.63 of the raw capacity; on a loaded one (2.9 s) ~0.43: at 60 %
    of the raw capacity the SLO of the steady phase is then missed before any burst.
    """
    service_s = 1.0 / capacity_rps
    if service_s >= target_s:
        return 0.0

    def quantile_s(rho: float) -> float:
        mean_wait = rho * service_s / (2.0 * (1.0 - rho))
        return service_s + (mean_wait * math.log(rho / (1.0 - quantile)) if rho > 1.0 - quantile else 0.0)

    low, high = 0.0, 1.0 - 1e-6
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if quantile_s(mid) <= target_s else (low, mid)
    return low * capacity_rps


def burst_rate(capacity_exact_rps: float, capacity_tmin_rps: float) -> float:
    """The burst's rate: over one replica's capacity even at T_min, within two replicas' at T = 1."""
    over = max(BURST_OVER_EXACT * capacity_exact_rps, BURST_OVER_TMIN * capacity_tmin_rps)
    return min(over, BURST_MAX_OVER_EXACT * capacity_exact_rps)


def burst_scenario(
    capacity_exact_rps: float,
    capacity_tmin_rps: float,
    *,
    period_s: float,
    window_s: float,
    settle_s: float = 0.0,
    duration_s: float | None = None,
    shape: RequestShape = RequestShape(),
) -> Scenario:
    """Steady, burst, recovery; ``duration_s`` stretches the last two.

    The steady phase lasts at least four control periods and one SLO window plus ``settle_s`` (the
    scale-down stabilization window): long enough for the operator to reach its steady state, so the
    burst meets a settled loop and the decisions it triggers are the burst's.
    """
    steady_s = max(4 * period_s, window_s + settle_s)
    rest_s = (duration_s - steady_s) if duration_s is not None else max(24 * period_s, 120.0)
    if rest_s < 4 * period_s:
        raise ValueError(
            f"--duration {duration_s:.0f}s leaves no room for a burst: the steady phase alone takes {steady_s:.0f}s "
            f"(4 control periods, or one SLO window and the scale-down stabilization); "
            f"ask for at least {steady_s + 8 * period_s:.0f}s"
        )
    steady = STEADY_FRACTION * capacity_exact_rps
    burst = burst_rate(capacity_exact_rps, capacity_tmin_rps)
    phases = (
        Phase("steady", steady_s, steady, steady),
        # Recovery as long as the burst: the queue the burst built drains, the latency window clears of
        # it, and only then may the temperature return (a 40% recovery ended runs before the return).
        Phase("burst", 0.5 * rest_s, burst, burst),
        Phase("recovery", 0.5 * rest_s, steady, steady),
    )
    return Scenario("burst", phases, shape)


def diurnal_scenario(
    capacity_exact_rps: float,
    capacity_tmin_rps: float,
    *,
    period_s: float,
    duration_s: float | None = None,
    shape: RequestShape = RequestShape(),
) -> Scenario:
    """A compressed day: night, morning ramp, a peak above one replica at T = 1, evening ramp, night."""
    total = duration_s if duration_s is not None else max(60 * period_s, 300.0)
    night = 0.3 * capacity_exact_rps
    peak = burst_rate(capacity_exact_rps, capacity_tmin_rps)
    fractions = (
        ("night", 0.15, night, night),
        ("morning", 0.25, night, peak),
        ("peak", 0.2, peak, peak),
        ("evening", 0.25, peak, night),
        ("late night", 0.15, night, night),
    )
    return Scenario("diurnal", tuple(Phase(n, f * total, a, b) for n, f, a, b in fractions), shape)


@dataclass(frozen=True)
class OfferedLoad:
    """What the load driver sends: the arrival schedule, its length, and where the burst begins."""

    name: str
    arrivals: tuple[Arrival, ...]
    duration_s: float
    burst_start_s: float | None
    description: str
    phase_starts: tuple[tuple[float, str], ...] = ()

    @property
    def mean_rps(self) -> float:
        return len(self.arrivals) / self.duration_s if self.duration_s > 0 else 0.0

    def phase_at(self, time_s: float) -> str:
        """The name of the phase running at ``time_s`` (the load's name when it has no phases)."""
        current = self.name
        for start, name in self.phase_starts:
            if time_s >= start:
                current = name
        return current if time_s < self.duration_s else "done"


def scenario_load(scenario: Scenario, *, seed: int = 0) -> OfferedLoad:
    """A built-in scenario as the driver's offered load."""
    phases = ", ".join(f"{p.name} {p.duration_s:.0f}s at {_rate_text(p)}" for p in scenario.phases)
    return OfferedLoad(
        scenario.name,
        tuple(scenario.arrivals(seed)),
        scenario.duration_s,
        scenario.phase_start_s("burst"),
        f"{scenario.name}: {phases}; {scenario.shape.prompt_tokens} prompt tokens, "
        f"<= {scenario.shape.max_tokens} generated",
        tuple((scenario.phase_start_s(p.name) or 0.0, p.name) for p in scenario.phases),
    )


def _rate_text(phase: Phase) -> str:
    if phase.start_rps == phase.end_rps:
        return f"{phase.start_rps:.2f} req/s"
    return f"{phase.start_rps:.2f}->{phase.end_rps:.2f} req/s"
