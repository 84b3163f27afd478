"""The data the control law takes and returns: the contract between the law and the operator.

The operator's reconcile builds an ``Observation`` from the metrics layer and the Deployment, calls
``thermostat.control.decide(observation, spec, memory, now, profile=...)`` and plans from the returned
``Decision``. Everything is plain data: each signal is a ``Reading``, ``Idle`` or ``Missing`` (never
a zero standing for "unknown"), the law's memory round-trips through JSON (it is stored in
``status.memory``), and time is passed in, never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from thermostat.control.signals import Missing, SignalValue


class Signal(StrEnum):
    """Names of the observed signals, as reported by ``Observation.missing_signals`` and conditions."""

    LATENCY = "latency"
    REQUEST_RATE = "requestRate"
    SERVED_RATE = "servedRate"
    SHED_RATE = "shedRate"
    TOKEN_RATE = "tokenRate"
    POWER = "power"
    ENERGY = "energy"
    QUALITY_KL = "qualityKL"
    SHADOW_TOKENS = "shadowTokens"
    QUALITY = "quality"
    QUEUE_DEPTH = "queueDepth"


@dataclass(frozen=True)
class Observation:
    """One look at the RoutedModel's pods (the contract of notes/observation_contract.md).

    Each metric field is a ``Reading``, ``Idle`` or ``Missing`` (``thermostat.control.signals``),
    decided once by the metrics layer. The knob fields describe what is in force now and are always
    known. ``time`` is the newest sample's, not the wall clock's: the law's staleness clock.
    """

    time: float  # Unix s of the newest sample behind the signals (not the wall clock)
    routing_temperature: float  # in force now, (0, 1]
    replicas: int  # Deployment spec.replicas now
    ready_replicas: int
    window_s: float  # the window the quantile and rates were computed over
    latency_s: SignalValue  # the SLO's quantile of the SLO's metric; Idle when no request completed
    request_rate: SignalValue  # OFFERED requests/s: every code of thermostat_requests_total
    served_rate: SignalValue  # code 200 requests/s
    shed_rate: SignalValue  # code 429 requests/s
    token_rate: SignalValue  # generated tokens/s
    power_w: SignalValue  # GPU power summed over pods
    energy_rate_w: SignalValue  # d(energy counter)/dt summed over pods, J/s
    quality_kl_nats: SignalValue  # shadow mean KL per token over the window; Idle when no shadow token
    shadow_token_rate: SignalValue  # shadow tokens/s (evidence for quality_kl_nats)
    quality_agreement: SignalValue  # shadow top-1 agreement in [0, 1]
    queue_depth: SignalValue
    power_source: str | None = None  # "nvml", "dcgm" or "estimate" when power_w is a Reading

    def signals(self) -> dict[str, SignalValue]:
        """Every metric field by its signal name."""
        return {name: getattr(self, attribute) for name, attribute in SIGNAL_FIELDS.items()}

    def missing_signals(self) -> dict[str, str]:
        """The signals that are ``Missing``, with why."""
        return {name: s.reason for name, s in self.signals().items() if isinstance(s, Missing)}


# Signal name -> Observation field.
SIGNAL_FIELDS: dict[str, str] = {
    Signal.LATENCY: "latency_s",
    Signal.REQUEST_RATE: "request_rate",
    Signal.SERVED_RATE: "served_rate",
    Signal.SHED_RATE: "shed_rate",
    Signal.TOKEN_RATE: "token_rate",
    Signal.POWER: "power_w",
    Signal.ENERGY: "energy_rate_w",
    Signal.QUALITY_KL: "quality_kl_nats",
    Signal.SHADOW_TOKENS: "shadow_token_rate",
    Signal.QUALITY: "quality_agreement",
    Signal.QUEUE_DEPTH: "queue_depth",
}


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
