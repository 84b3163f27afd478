"""Gather one observation's signals from a source and decide, in this one place, what each one is.

Every signal reaches the law as exactly one of ``Reading``, ``Idle`` or ``Missing`` (DESIGN §4;
``thermostat.control.signals``). ``classify`` is the whole rule:
- a number the source returned is a ``Reading``, timed by its newest underlying sample;
- NaN (a quantile or a ratio over a window without events) is ``Idle`` when its evidence, the rate
  of the events it is computed over, is a fresh zero; otherwise ``Missing``;
- every other failure (backend down, query rejected, no series, stale anchor) is ``Missing`` with
  the failure's reason word and message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thermostat.control.signals import Idle, Missing, Reading, SignalValue
from thermostat.control.types import Signal
from thermostat.metrics.source import (
    CredentialsRejectedError,
    MetricsError,
    MetricsSource,
    NotANumberError,
    Sample,
    Scope,
    SourceUnavailableError,
    StaleDataError,
    TlsVerificationError,
)

# Evidence first: a quantile or ratio is judged after the rate that says whether anything happened.
OBSERVED: tuple[str, ...] = (
    Signal.REQUEST_RATE,
    Signal.SERVED_RATE,
    Signal.SHED_RATE,
    Signal.TOKEN_RATE,
    Signal.SHADOW_TOKENS,
    Signal.POWER,
    Signal.ENERGY,
    Signal.LATENCY,
    Signal.QUALITY,
    Signal.QUALITY_KL,
    Signal.QUEUE_DEPTH,
    Signal.WITHIN_SLO,
)
# signal -> the rate whose fresh zero makes its NaN a known "nothing happened"
IDLE_EVIDENCE: dict[str, str] = {
    Signal.LATENCY: Signal.SERVED_RATE,  # the latency histograms count served requests
    Signal.WITHIN_SLO: Signal.SERVED_RATE,
    Signal.QUALITY: Signal.SHADOW_TOKENS,
    Signal.QUALITY_KL: Signal.SHADOW_TOKENS,
}
REASON_CHARS = 240


@dataclass(frozen=True)
class Signals:
    """What each observed signal is, the failures behind the Missing ones, and where power came from."""

    values: dict[str, SignalValue] = field(default_factory=dict)
    errors: dict[str, MetricsError] = field(default_factory=dict)
    power_source: str | None = None
    source: str = "prometheus"  # or "direct" (thermostat.metrics.direct)

    def get(self, name: str) -> SignalValue:
        """The signal; one that was not asked for is Missing, never zero."""
        return self.values.get(name, Missing(f"{name} was not observed"))

    @property
    def newest_time(self) -> float | None:
        """Unix time of the newest sample behind any known signal (None when nothing is known)."""
        times = [v.time for v in self.values.values() if isinstance(v, Reading | Idle)]
        return max(times, default=None)

    @property
    def unreachable(self) -> bool:
        """True when the backend itself did not answer (every failure says the source is unavailable)."""
        known = any(not isinstance(v, Missing) for v in self.values.values())
        down = all(isinstance(e, SourceUnavailableError) for e in self.errors.values())
        return bool(self.errors) and not known and down


# The signals the law cannot decide without; when Prometheus fails on these, the pods are read directly.
NEEDED: tuple[str, ...] = (Signal.LATENCY, Signal.REQUEST_RATE)


# Prometheus answered, but the operator's credentials or CA are wrong: the user's to fix, and said as
# MetricsAvailable=False naming the Secret (issue 15), never papered over by reading the pods directly.
MISCONFIGURED = (CredentialsRejectedError, TlsVerificationError)


def prometheus_failed(signals: Signals) -> bool:
    """True when the backend is down or its samples of a needed signal are stale (a direct scrape may help)."""
    if any(isinstance(error, MISCONFIGURED) for error in signals.errors.values()):
        return False
    if signals.unreachable:
        return True
    return any(isinstance(signals.errors.get(name), SourceUnavailableError | StaleDataError) for name in NEEDED)


def unusable(reason: str, signals: tuple[str, ...] = OBSERVED) -> Signals:
    """Every signal Missing for one reason (e.g. the source's credentials cannot be read)."""
    return Signals(values={name: Missing(reason) for name in signals})


def _is_fresh_zero(evidence: SignalValue | None) -> bool:
    return isinstance(evidence, Idle) or (isinstance(evidence, Reading) and evidence.value <= 0.0)


def classify(outcome: Sample | MetricsError, *, now: float, evidence: SignalValue | None = None) -> SignalValue:
    """The one rule turning what a source answered into ``Reading | Idle | Missing``."""
    if isinstance(outcome, Sample):
        return Reading(outcome.value, time=now - (outcome.age_s or 0.0))
    if isinstance(outcome, NotANumberError) and _is_fresh_zero(evidence):
        assert isinstance(evidence, Reading | Idle)  # narrowed by _is_fresh_zero
        return Idle(time=evidence.time)
    return Missing(f"{outcome.reason}: {str(outcome)[:REASON_CHARS]}")


def collect(source: MetricsSource, scope: Scope, *, now: float, signals: tuple[str, ...] = OBSERVED) -> Signals:
    """Read every signal and classify each; a failure is Missing with its reason, never zero.

    Once the backend is unreachable the remaining signals are not tried: each would wait its timeout.
    """
    out = Signals()
    power_source = None
    for signal in signals:
        if out.unreachable:
            out.values[signal] = next(iter(out.values.values()))
            continue
        try:
            outcome: Sample | MetricsError = source.read(signal, scope, now=now)
        except MetricsError as error:
            outcome = error
            out.errors[signal] = error
        evidence = out.values.get(IDLE_EVIDENCE.get(signal, ""))
        out.values[signal] = classify(outcome, now=now, evidence=evidence)
        if isinstance(outcome, Sample) and outcome.power_source:
            power_source = outcome.power_source
    return Signals(values=out.values, errors=out.errors, power_source=power_source)
