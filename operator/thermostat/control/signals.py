"""What one observed signal can be: a ``Reading``, ``Idle`` or ``Missing`` (DESIGN §4).

Unknown is not zero, and zero is not unknown. The metrics layer decides, in one place, which of the
three each signal is, and the law applies one rule to each:

- ``Reading(value, time, source)``: a fresh value; ``time`` is the Unix time of the newest sample
  behind it, ``source`` where it came from (``prometheus``, or ``direct`` for a scrape of the pods).
- ``Idle(time)``: the series are fresh but no request arrived in the window, so a latency quantile
  does not exist and the load is a known zero. An idle model scales down under the scale-down rules.
- ``Missing(reason)``: the signal could not be read (query failed, rejected, no series) or its newest
  sample is older than the spec's ``metricsMaxAgeSeconds``. Missing holds; it never scales down.

The law's ``Observation`` carries one of these per signal. The helpers below are the only place that
turns them into numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    """A fresh value of a signal."""

    value: float
    time: float  # Unix seconds of the newest sample behind the value
    source: str = "prometheus"  # "prometheus" or "direct"


@dataclass(frozen=True)
class Idle:
    """Fresh series without a single request in the window: a known zero load, no latency to speak of."""

    time: float


@dataclass(frozen=True)
class Missing:
    """The signal is unknown; ``reason`` says why in words a person can act on (e.g. ``Stale: 95 s old``)."""

    reason: str


SignalValue = Reading | Idle | Missing


def known(signal: SignalValue) -> bool:
    """True for a Reading or Idle: something the law may act on."""
    return not isinstance(signal, Missing)


def load_value(signal: SignalValue) -> float | None:
    """The value of a load-like signal (rates, queue depth): Idle reads as a known 0, Missing as None."""
    if isinstance(signal, Reading):
        return signal.value
    if isinstance(signal, Idle):
        return 0.0
    return None


def reading_value(signal: SignalValue) -> float | None:
    """The value of a signal that has none when idle (a latency quantile, shadow quality): else None."""
    return signal.value if isinstance(signal, Reading) else None
