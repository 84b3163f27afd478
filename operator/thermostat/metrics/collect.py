"""Gather one observation's signals from a source, turning every failure into "missing" in one place.

The law gets ``None`` plus a reason for each signal it could not have (DESIGN §4: unknown is not zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thermostat.control.types import Signal
from thermostat.metrics.source import MetricsError, MetricsSource, Scope, SourceUnavailableError
from thermostat.metrics.templates import QUEUE_DEPTH

OBSERVED = (Signal.LATENCY, Signal.REQUEST_RATE, Signal.TOKEN_RATE, Signal.POWER, Signal.ENERGY, Signal.QUALITY)


@dataclass
class Signals:
    """Values read (by signal name) and why the others are missing."""

    values: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    errors: dict[str, MetricsError] = field(default_factory=dict)
    power_source: str | None = None
    oldest_age_s: float | None = None

    @property
    def unreachable(self) -> bool:
        """True when the backend itself did not answer (every failure says the source is unavailable)."""
        return (
            bool(self.errors)
            and not self.values
            and all(isinstance(e, SourceUnavailableError) for e in self.errors.values())
        )


def collect(source: MetricsSource, scope: Scope, *, now: float, signals: tuple[str, ...] = OBSERVED) -> Signals:
    """Read every signal; a failing one is recorded as missing with its reason, never as zero.

    Once the backend is unreachable the remaining signals are not tried: each would wait its timeout.
    """
    out = Signals()
    for signal in (*signals, QUEUE_DEPTH):
        if out.unreachable:
            out.missing[signal] = out.missing[next(iter(out.missing))]
            continue
        try:
            reading = source.read(signal, scope, now=now)
        except MetricsError as error:
            out.errors[signal] = error
            out.missing[signal] = f"{error.reason}: {error}"
            continue
        out.values[signal] = reading.value
        if reading.power_source:
            out.power_source = reading.power_source
        if reading.age_s is not None:
            out.oldest_age_s = max(out.oldest_age_s or 0.0, reading.age_s)
    return out
