"""Build the law's ``Observation`` in tests from plain numbers: a float is a fresh ``Reading``, ``None``
is ``Missing`` (the old "absent"), and a signal not given was not observed (``Missing`` too)."""

from __future__ import annotations

from thermostat.control import Observation
from thermostat.control.signals import Idle, Missing, Reading, SignalValue
from thermostat.control.types import SIGNAL_FIELDS

SIGNALS = frozenset(SIGNAL_FIELDS)  # the Observation fields that carry a signal


def as_signal(value: float | SignalValue | None, time: float) -> SignalValue:
    if value is None:
        return Missing("missing")
    if isinstance(value, Reading | Idle | Missing):
        return value
    return Reading(float(value), time)


def observed(
    *,
    time: float,
    routing_temperature: float,
    replicas: int,
    ready_replicas: int,
    window_s: float = 60.0,
    power_source: str | None = None,
    **signals: float | SignalValue | None,
) -> Observation:
    """An Observation at ``time``; unknown keyword names fail loudly."""
    unknown = set(signals) - SIGNALS
    if unknown:
        raise TypeError(f"not Observation signals: {sorted(unknown)}")
    values = {name: as_signal(signals[name], time) if name in signals else Missing("not observed") for name in SIGNALS}
    return Observation(
        time=time,
        routing_temperature=routing_temperature,
        replicas=replicas,
        ready_replicas=ready_replicas,
        window_s=window_s,
        power_source=power_source,
        **values,  # type: ignore[arg-type]
    )
