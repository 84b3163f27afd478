"""The savings ledger as ``thermostat explain`` prints it: a table of days and the total, in kWh.

A price per kWh (``--price-per-kwh``) adds the money; figures from the modelled power are headed
"estimated", and so is the counterfactual always (it is never measured).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from thermostat.api.status import Savings, SavingsPeriod
from thermostat.status.savings import JOULES_PER_KWH


@dataclass(frozen=True)
class Price:
    """What a kWh costs, for the money columns."""

    per_kwh: float
    currency: str = ""

    def money(self, joules: float) -> str:
        amount = joules / JOULES_PER_KWH * self.per_kwh
        return f"{amount:,.2f} {self.currency}".strip()


def kwh(joules: float) -> str:
    """Energy in kWh with three significant decimals at small figures."""
    value = joules / JOULES_PER_KWH
    return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"


def saved_share(period: SavingsPeriod) -> str:
    if period.exact_energy_joules <= 0:
        return "-"
    return f"{100.0 * period.saved_joules / period.exact_energy_joules:+.1f}%"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def _row(label: str, period: SavingsPeriod, price: Price | None) -> list[str]:
    row = [
        label,
        kwh(period.energy_joules),
        kwh(period.exact_energy_joules),
        f"{kwh(period.saved_joules)} ({saved_share(period)})",
        f"{period.quality_loss_percent_mean:.2f}%",
        _hours(period.accounted_seconds) + (f" (+{_hours(period.unaccounted_seconds)} unknown)"
                                           if period.unaccounted_seconds >= 60 else ""),
    ]  # fmt: skip
    if price is not None:
        row.extend([price.money(period.energy_joules), price.money(period.saved_joules)])
    return row


def savings_view(savings: Savings | None, *, price: Price | None = None) -> RenderableType:
    """The ledger's days and total; a line saying so when there is no ledger yet."""
    if savings is None or savings.total.accounted_seconds <= 0:
        return Text("\nSavings: nothing accounted yet (the ledger needs two control runs with energy known).")
    estimated = "estimated: power is modelled, not measured; " if savings.estimated else ""
    title = Text(
        f"\nSavings against exact quality (T = 1) since {savings.since[:19]}Z "
        f"({estimated}the exact-quality energy is the law's estimate):",
        style="bold",
    )
    table = Table(show_edge=False, box=None, pad_edge=False)
    columns = ["period", "used kWh", "exact kWh", "saved kWh", "quality spent", "accounted"]
    if price is not None:
        columns.extend([f"cost at {price.per_kwh:g}/kWh", "saved"])
    for column in columns:
        table.add_column(column, justify="left" if column == "period" else "right")
    for day in savings.days:
        table.add_row(*_row(day.day or "-", day, price))
    table.add_row(*_row("since creation", savings.total, price), style="bold")
    return Group(title, table)
