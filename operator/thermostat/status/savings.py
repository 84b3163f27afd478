"""The savings ledger (``status.savings``): energy used against the exact-quality counterfactual.

Pure accounting with the clock passed in. Each control run accrues the interval since the previous
one at the rates it observed: the energy used (the energy counter's rate, else the power gauge), the
energy the same load would have taken at exact quality (``thermostat.control.exact``), and the tokens
generated, which weight the quality loss in force. An interval is *unaccounted* when either energy is
unknown (metrics missing, the law held) or when it is longer than ``max_interval_s`` (the operator
was down: nothing says what ran meanwhile). Days are UTC; an interval across midnight is split
between the two days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from thermostat.api.status import MAX_SAVINGS_DAYS, Savings, SavingsPeriod

JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Accrual:
    """One run's rates over the interval that ends now; None where unknown."""

    energy_rate_w: float | None  # energy used per second (measured, or the modelled estimate)
    exact_power_w: float | None  # the exact-quality counterfactual's power
    token_rate: float = 0.0  # generated tokens per second
    loss_percent: float = 0.0  # quality loss of the temperature in force, percent
    estimated: bool = False  # the energy used is the modelled estimate (power source "estimate")


def timestamp(unix_s: float) -> str:
    """RFC 3339 with milliseconds: the ledger's intervals must not lose a second per run to rounding."""
    moment = datetime.fromtimestamp(unix_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def unix(text: str) -> float:
    """The Unix time of an RFC 3339 timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def utc_day(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d")


def day_parts(start: float, end: float) -> list[tuple[str, float]]:
    """The UTC days that ``[start, end)`` covers, each with the seconds it has of it."""
    parts: list[tuple[str, float]] = []
    while start < end:
        midnight = (datetime.fromtimestamp(start, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
                    + timedelta(days=1)).timestamp()  # fmt: skip
        stop = min(end, midnight)
        parts.append((utc_day(start), stop - start))
        start = stop
    return parts


def accrue(ledger: Savings | None, accrual: Accrual, *, now: float, max_interval_s: float) -> Savings:
    """The ledger after the interval that ends at ``now``; a new ledger begins at ``now`` with nothing counted."""
    if ledger is None:
        return Savings(since=timestamp(now), last_time=timestamp(now), days=[SavingsPeriod(day=utc_day(now))])
    interval_s = now - unix(ledger.last_time)
    if interval_s <= 0:
        return ledger
    known = accrual.energy_rate_w is not None and accrual.exact_power_w is not None
    counted = known and interval_s <= max_interval_s
    days = list(ledger.days)
    for day, part_s in day_parts(now - interval_s, now):
        if not days or days[-1].day != day:
            days.append(SavingsPeriod(day=day))
        days[-1] = _add(days[-1], accrual, part_s, counted=counted)
    return Savings(
        since=ledger.since,
        last_time=timestamp(now),
        estimated=ledger.estimated or (counted and accrual.estimated),
        total=_add(ledger.total, accrual, interval_s, counted=counted),
        days=days[-MAX_SAVINGS_DAYS:],
    )


def _add(period: SavingsPeriod, accrual: Accrual, interval_s: float, *, counted: bool) -> SavingsPeriod:
    """``period`` with one interval added: counted at ``accrual``'s rates, or as unaccounted time."""
    used_w, exact_w = accrual.energy_rate_w, accrual.exact_power_w
    if not counted or used_w is None or exact_w is None:
        return period.model_copy(update={"unaccounted_seconds": period.unaccounted_seconds + interval_s})
    energy = period.energy_joules + used_w * interval_s
    exact = period.exact_energy_joules + exact_w * interval_s
    tokens = accrual.token_rate * interval_s
    weight = period.generated_tokens + tokens
    mean = period.quality_loss_percent_mean
    if weight > 0:
        mean = (mean * period.generated_tokens + accrual.loss_percent * tokens) / weight
    return period.model_copy(
        update={
            "accounted_seconds": period.accounted_seconds + interval_s,
            "energy_joules": energy,
            "exact_energy_joules": exact,
            "saved_joules": exact - energy,
            "generated_tokens": weight,
            "quality_loss_percent_mean": mean,
        }
    )
