"""The savings ledger: pure accounting on an injected clock, and the exact-quality counterfactual."""

from __future__ import annotations

from dataclasses import replace

import pytest
from control_plant import assumed_profile, make_spec

from thermostat.api.status import MAX_SAVINGS_DAYS
from thermostat.control import BURST_RESERVE
from thermostat.control.exact import exact_counterfactual
from thermostat.control.memory import LawMemory
from thermostat.status.savings import JOULES_PER_KWH, Accrual, accrue, unix

pytestmark = pytest.mark.fast
DAY0 = unix("2026-03-01T23:50:00Z")
STEADY = Accrual(energy_rate_w=600.0, exact_power_w=800.0, token_rate=100.0, loss_percent=1.0)


def run_ledger(accruals: list[tuple[float, Accrual]], *, max_interval_s: float = 45.0):
    ledger = None
    for now, accrual in accruals:
        ledger = accrue(ledger, accrual, now=now, max_interval_s=max_interval_s)
    assert ledger is not None
    return ledger


def test_energy_accrues_per_interval_at_the_rates_seen() -> None:
    ledger = run_ledger([(DAY0 + 15 * k, STEADY) for k in range(5)])  # 4 intervals of 15 s
    total = ledger.total
    assert total.accounted_seconds == pytest.approx(60.0)
    assert total.energy_joules == pytest.approx(600.0 * 60)
    assert total.exact_energy_joules == pytest.approx(800.0 * 60)
    assert total.saved_joules == pytest.approx(200.0 * 60)
    assert total.quality_loss_percent_mean == pytest.approx(1.0)
    assert ledger.since == "2026-03-01T23:50:00.000Z"


def test_a_gap_or_an_unknown_energy_is_unaccounted_never_guessed() -> None:
    unknown = replace(STEADY, exact_power_w=None)  # the law held: no counterfactual
    ledger = run_ledger([(DAY0, STEADY), (DAY0 + 15, STEADY), (DAY0 + 315, STEADY), (DAY0 + 330, unknown)])
    assert ledger.total.accounted_seconds == pytest.approx(15.0)
    assert ledger.total.unaccounted_seconds == pytest.approx(300.0 + 15.0)
    assert ledger.total.energy_joules == pytest.approx(600.0 * 15)


def test_quality_spent_is_weighted_by_the_tokens_generated() -> None:
    busy = replace(STEADY, token_rate=300.0, loss_percent=2.0)
    quiet = replace(STEADY, token_rate=100.0, loss_percent=0.0)
    ledger = run_ledger([(DAY0, STEADY), (DAY0 + 10, busy), (DAY0 + 20, quiet)])
    assert ledger.total.quality_loss_percent_mean == pytest.approx(2.0 * 3000 / 4000)
    assert ledger.total.generated_tokens == pytest.approx(4000.0)


def test_days_are_utc_days_bounded_and_the_total_keeps_everything() -> None:
    hours = [(DAY0 + 15 * k, STEADY) for k in range(0, 80)]  # crosses midnight at 23:50 + 10 min
    ledger = run_ledger(hours)
    assert [d.day for d in ledger.days] == ["2026-03-01", "2026-03-02"]
    assert ledger.days[0].accounted_seconds == pytest.approx(600.0)
    assert sum(d.energy_joules for d in ledger.days) == pytest.approx(ledger.total.energy_joules)
    week = [(DAY0 + 86400 * k + 15 * j, STEADY) for k in range(10) for j in range(2)]
    ledger = run_ledger(week, max_interval_s=86400 * 2)
    assert len(ledger.days) == MAX_SAVINGS_DAYS
    assert ledger.days[-1].day == "2026-03-10"  # the tenth day from 1 March, 23:50
    assert ledger.total.accounted_seconds > sum(d.accounted_seconds for d in ledger.days)


def test_estimated_power_marks_the_ledger_estimated() -> None:
    measured = run_ledger([(DAY0, STEADY), (DAY0 + 15, STEADY)])
    assert not measured.estimated
    mixed = run_ledger([(DAY0, STEADY), (DAY0 + 15, STEADY), (DAY0 + 30, replace(STEADY, estimated=True))])
    assert mixed.estimated


def test_the_clock_is_the_callers_a_repeated_time_adds_nothing() -> None:
    ledger = run_ledger([(DAY0, STEADY), (DAY0 + 15, STEADY), (DAY0 + 15, STEADY), (DAY0 + 14, STEADY)])
    assert ledger.total.accounted_seconds == pytest.approx(15.0)
    assert ledger.total.energy_joules / JOULES_PER_KWH == pytest.approx(600.0 * 15 / 3.6e6)


def test_the_counterfactual_is_the_laws_plan_at_exact_quality_with_its_power_correction() -> None:
    profile, spec = assumed_profile(), make_spec()
    memory = LawMemory()
    exact = exact_counterfactual(8.0, spec=spec, mem=memory, profile=profile, reserve=BURST_RESERVE, in_force=0.8)
    at_one = exact_counterfactual(8.0, spec=spec, mem=memory, profile=profile, reserve=BURST_RESERVE, in_force=1.0)
    assert exact.replicas >= 1
    assert at_one.loss_percent_in_force == 0.0 < exact.loss_percent_in_force
    hotter = replace(memory, power_scale=1.5)  # the pods drew more dynamic power than the profile says
    corrected = exact_counterfactual(8.0, spec=spec, mem=hotter, profile=profile, reserve=BURST_RESERVE, in_force=0.8)
    idle_w = 90.0 * exact.replicas
    assert corrected.power_w - idle_w == pytest.approx(1.5 * (exact.power_w - idle_w))
    more = exact_counterfactual(40.0, spec=spec, mem=memory, profile=profile, reserve=BURST_RESERVE, in_force=0.8)
    assert more.replicas > exact.replicas
    assert more.replicas <= spec.replicas.max
