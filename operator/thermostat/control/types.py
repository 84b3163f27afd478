"""The data the control law takes and returns: the contract between the law and the operator.

The operator's handlers build an ``Observation`` from the metrics sources and the Deployment, call
``thermostat.control.decide(observation, spec, memory, now, profile=...)`` and apply the returned
``Decision``. Everything is plain data: a missing signal is ``None`` (never zero), the law's memory
round-trips through JSON (it is stored in ``status.memory``), and time is passed in, never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Signal(StrEnum):
    """Names of the observed signals, as reported in ``Observation.missing`` and conditions."""

    LATENCY = "latency"
    REQUEST_RATE = "requestRate"
    TOKEN_RATE = "tokenRate"
    POWER = "power"
    ENERGY = "energy"
    QUALITY = "quality"


@dataclass(frozen=True)
class Observation:
    """One look at the RoutedModel's pods, taken at ``time`` (Unix seconds).

    Metric fields are ``None`` when the signal was missing, NaN or older than the spec's
    ``metricsMaxAgeSeconds``; ``missing`` names them with the reason (e.g. ``{"latency": "stale"}``).
    The knob fields describe what is in force now and are always known.
    """

    time: float
    routing_temperature: float  # in force now, (0, 1]
    replicas: int  # desired replicas of the Deployment now (spec.replicas)
    ready_replicas: int  # pods ready to serve
    latency_s: float | None = None  # the SLO's quantile of the SLO's metric over its window
    request_rate: float | None = None  # completed requests per second
    token_rate: float | None = None  # generated tokens per second
    power_w: float | None = None  # GPU power summed over pods
    power_source: str | None = None  # "nvml", "dcgm" or "estimate"
    energy_rate_w: float | None = None  # d(energy counter)/dt summed over pods, joules per second
    quality_agreement: float | None = None  # shadow top-1 agreement, in [0, 1]
    queue_depth: float | None = None  # requests waiting, summed over pods
    missing: dict[str, str] = field(default_factory=dict)  # signal name -> why it is missing


@dataclass(frozen=True)
class Verdict:
    """One condition the law computed: status True/False/Unknown, CamelCase reason, message."""

    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """What the law wants now and why.

    ``conditions`` holds the law's verdicts keyed by condition type: ``SLOMet``, ``WithinBudget``,
    ``MetricsAvailable``, ``Feasible``. ``memory`` is the new memory, to be stored in status and
    passed to the next call. ``held`` is true when the law kept the settings for lack of metrics.
    """

    routing_temperature: float
    replicas: int
    reason: str
    memory: dict[str, Any]
    conditions: dict[str, Verdict] = field(default_factory=dict)
    held: bool = False
    predicted_latency_s: float | None = None
    predicted_power_w: float | None = None
    memory_reset: bool = False  # the stored memory had another version (or was unreadable) and was reset
