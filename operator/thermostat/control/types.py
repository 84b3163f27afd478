"""The data the control law takes and returns: the contract between the law and the operator.

The operator builds an ``Observation`` from the metrics layer and the Deployment, calls
``thermostat.control.decide(observation, spec, memory, now, profile=...)`` and applies the returned
``Decision``. Everything is plain data: each signal is a ``Reading``, ``Idle`` or ``Missing``
(``thermostat.control.signals``, DESIGN §4), the law's memory round-trips through JSON (it is
stored in ``status.memory``), and time is passed in, never read. The field names and order of
``Observation`` are a contract shared with the metrics layer (docs/control-law.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from thermostat.control.signals import Missing, SignalValue


class Signal(StrEnum):
    """Names of the observed signals, as reported in ``Observation.missing_signals()`` and conditions."""

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
    WITHIN_SLO = "withinSlo"


NOT_OBSERVED = Missing("not observed")  # the default of a signal added after the first Observation

# Observation field -> the signal name used in missing_signals() and the conditions.
SIGNAL_FIELDS: dict[str, Signal] = {
    "latency_s": Signal.LATENCY,
    "request_rate": Signal.REQUEST_RATE,
    "served_rate": Signal.SERVED_RATE,
    "shed_rate": Signal.SHED_RATE,
    "token_rate": Signal.TOKEN_RATE,
    "power_w": Signal.POWER,
    "energy_rate_w": Signal.ENERGY,
    "quality_kl_nats": Signal.QUALITY_KL,
    "shadow_token_rate": Signal.SHADOW_TOKENS,
    "quality_agreement": Signal.QUALITY,
    "queue_depth": Signal.QUEUE_DEPTH,
    "within_slo": Signal.WITHIN_SLO,
}


@dataclass(frozen=True)
class Observation:
    """One look at the RoutedModel's pods; the knob fields are what is in force now and always known."""

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
    # Share of served requests within the SLO target over the window, from the SLO bucket the pods
    # add at start (DESIGN §3); reported, not decided on (the law reads the quantile).
    within_slo: SignalValue = NOT_OBSERVED
    metrics_source: str = "prometheus"  # or "direct": the pods' /metrics, read while Prometheus fails

    def missing_signals(self) -> dict[str, str]:
        """Every signal that is Missing, by name, with why."""
        out: dict[str, str] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Missing):
                out[SIGNAL_FIELDS[item.name].value] = value.reason
        return out


@dataclass(frozen=True)
class Verdict:
    """One condition the law computed: status True/False/Unknown, CamelCase reason, message."""

    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class ExactCounterfactual:
    """Serving the observed load at exact quality (T = 1): the replicas the law would need, their power,
    and the quality loss the temperature in force spends meanwhile (for the savings ledger)."""

    replicas: int
    power_w: float
    loss_percent_in_force: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What the law wants now and why.

    ``conditions`` holds the law's verdicts keyed by condition type: ``SLOMet``, ``WithinBudget``,
    ``MetricsAvailable``, ``Feasible``, ``QualityWithinBudget``. ``memory`` is the new memory, to be
    stored in status and passed to the next call. ``held`` is true when the law kept the settings for
    lack of metrics. ``routing_temperature`` is the one to apply now; ``operating_temperature`` the
    steady operating point (the lowest-energy temperature within the quality budget), which the
    applied one returns to once the SLO is no longer at risk.
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
    operating_temperature: float | None = None
    quality_loss_percent: float | None = None  # expected at the applied temperature (measured-corrected)
    quality_loss_percent_mean: float | None = None  # time-averaged since the memory began
    rule: str = "Steady"  # the rule that fired (thermostat.control.rules)
    exact: ExactCounterfactual | None = None  # the exact-quality counterfactual; None while held
