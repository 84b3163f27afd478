"""What one observation tells the law, and with how much evidence (DESIGN §4).

The law acts on numbers only through here: ``Idle`` reads as a known zero load with no latency to
speak of, a latency quantile counts as an *excursion* only when it is over the margined target and
rests on enough completions in its window, and the first window after a pod turned ready is its
warm-up (its first requests are slow for reasons that more replicas or less compute do not change).

A zero load is evidence of idleness only over a whole window of metrics: once the law has seen the
needed signals go missing (a pod killed, its series gone), a zero read in the first window after they
are back is not Idle (``unproven_idle``). A restarted pod's counters start at zero, so its window
reads "no request finished" while its first requests are still running.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from thermostat.api.spec import RoutedModelSpec
from thermostat.control import conditions as c
from thermostat.control.memory import LawMemory
from thermostat.control.signals import Idle, load_value, reading_value
from thermostat.control.types import Observation

# A p95 over fewer completions than this is one or two requests: not a reason to spend quality.
MIN_COMPLETIONS_FOR_EXCURSION = 10
# Fewer completions than this in a window: too quiet for anything to have queued. The model's
# prediction alone does not put the SLO at risk there (a lone request's latency is the model's least
# reliable figure), so the temperature stays at or above the operating point unless an excursion shows.
QUIET_COMPLETIONS = 20


@dataclass(frozen=True)
class Evidence:
    """The observation in the law's terms."""

    latency_s: float | None  # the observed quantile; None when idle (no request completed)
    demand: float  # offered requests/s plus the backlog drained over one SLO window
    completions: float  # requests completed in the window the quantile covers
    window_s: float
    temperature: float  # in force
    temperature_held_s: float  # how long it has been in force
    replicas: int
    ready: int
    excursion: bool  # observed quantile over the excursion threshold (near the target), with enough completions
    warming: bool  # a pod turned ready less than one window ago
    idle: bool  # no request offered in the window

    @property
    def quiet(self) -> bool:
        return self.completions < QUIET_COMPLETIONS

    @property
    def starting(self) -> int:
        return max(0, self.replicas - self.ready)


def track_clocks(mem: LawMemory, obs: Observation, now: float) -> LawMemory:
    """Since when the temperature in force has held, and when a pod last turned ready (its warm-up)."""
    changed = mem.last_temperature is None or abs(obs.routing_temperature - mem.last_temperature) > 1e-9
    temperature_since = now if changed or mem.temperature_since is None else mem.temperature_since
    warmed = mem.last_ready is not None and obs.ready_replicas > mem.last_ready
    return replace(
        mem,
        temperature_since=temperature_since,
        warm_since=now if warmed else mem.warm_since,
        last_ready=obs.ready_replicas,
    )


def read_evidence(
    obs: Observation, spec: RoutedModelSpec, mem: LawMemory, now: float, *, excursion_s: float
) -> Evidence:
    """The evidence of a fresh observation (missing signals have been ruled out before)."""
    window_s = obs.window_s if obs.window_s > 0 else float(spec.slo.window_seconds)
    offered = load_value(obs.request_rate) or 0.0
    served = load_value(obs.served_rate)
    completions = (offered if served is None else served) * window_s
    demand = offered + (load_value(obs.queue_depth) or 0.0) / spec.slo.window_seconds
    latency = reading_value(obs.latency_s)
    warming = mem.warm_since is not None and now - mem.warm_since < window_s
    excursion = latency is not None and latency > excursion_s and completions >= MIN_COMPLETIONS_FOR_EXCURSION
    return Evidence(
        latency_s=latency,
        demand=demand,
        completions=completions,
        window_s=window_s,
        temperature=obs.routing_temperature,
        temperature_held_s=0.0 if mem.temperature_since is None else now - mem.temperature_since,
        replicas=obs.replicas,
        ready=obs.ready_replicas,
        excursion=excursion,
        warming=warming,
        idle=reads_idle(obs),
    )


def reads_idle(obs: Observation) -> bool:
    """No request offered in the window, as the observation reads (Idle, or zero with no latency)."""
    offered = load_value(obs.request_rate) or 0.0
    return isinstance(obs.request_rate, Idle) or (offered <= 0 and reading_value(obs.latency_s) is None)


def track_metrics(mem: LawMemory, missing: bool, now: float) -> LawMemory:
    """When the needed signals were last missing, and since when they have been known again."""
    if missing:
        return replace(mem, metrics_lost_at=now, metrics_known_since=None)
    return mem if mem.metrics_known_since is not None else replace(mem, metrics_known_since=now)


def partial_window_s(mem: LawMemory, now: float, window_s: float) -> float | None:
    """Seconds since the needed signals came back after a gap the law saw, while under one window; else None."""
    if mem.metrics_lost_at is None or mem.metrics_known_since is None:
        return None
    known_s = now - mem.metrics_known_since
    return known_s if known_s < window_s else None


def unproven_idle(obs: Observation, mem: LawMemory, now: float, window_s: float) -> dict[str, str]:
    """An idle read within a window of the needed signals coming back after the law saw them missing."""
    known_s = partial_window_s(mem, now, window_s)
    if known_s is None or not reads_idle(obs):
        return {}
    return {"request_rate": f"{c.METRICS_WINDOW_INCOMPLETE}: zero over the {known_s:.0f}s since the metrics came back, "
                            f"less than the {window_s:.0f}s window (a restarted pod counts from zero)"}  # fmt: skip
