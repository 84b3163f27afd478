"""``thermostat explain`` on recorded status: prose a person reads in a minute, quiet periods summarised.

The fixtures in tests/data/audit are the status and log the real law leaves behind in the simulator
(``python tests/data/audit/record.py`` re-records them): the first 20 minutes of the Azure trace, and
a steady load with a three-minute metrics outage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from thermostat.api.status import RoutedModelStatus
from thermostat.sim.audited import EPOCH_S
from thermostat.status import parse_status
from thermostat.status.explain import explain, log_records
from thermostat.status.ledger_view import Price

pytestmark = pytest.mark.fast
DATA = Path(__file__).resolve().parents[1] / "data" / "audit"
NOW = EPOCH_S + 1300.0


def status(name: str) -> RoutedModelStatus:
    parsed = parse_status(json.loads((DATA / f"{name}.status.json").read_text()))
    assert parsed is not None, f"{name}.status.json no longer parses: re-record it (tests/data/audit/record.py)"
    return parsed


def text(name: str, *, log: bool = False, price: Price | None = None, limit: int = 10) -> str:
    records = None
    if log:
        lines = (DATA / f"{name}.log.jsonl").read_text().splitlines()
        records, unreadable = log_records(lines, namespace="inference", name="chat")
        assert unreadable == 0
    console = Console(width=120, color_system=None, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(explain(status(name), name="chat", namespace="inference", now=NOW, log_records=records,
                          limit=limit, price=price))  # fmt: skip
    return console.export_text()


def test_a_metrics_outage_reads_as_one_held_period_with_its_cause() -> None:
    prose = text("outage", limit=20)
    held = [line for line in prose.splitlines() if "metrics unavailable" in line]
    assert len(held) == 1, prose  # twelve held runs: one line, not twelve
    assert "12 runs" in held[0]
    assert "QueryFailed: connection refused" in prose
    assert "Nothing changed for 3 min" in prose


def test_one_sentence_sums_up_the_trail() -> None:
    first = text("outage", log=True).split("oldest first (from the operator's log):")[1].strip().split("\n08:")[0]
    assert first.startswith("Since 08:00:05 (15 min, 61 runs)")
    assert "fast-path temperature drops" in first
    assert "13 runs held for missing metrics" in " ".join(first.split())


def test_the_burst_reads_as_the_fast_path_then_replicas() -> None:
    prose = text("azure", log=True, limit=60)
    first_drop = prose.index("Latency excursion")
    assert prose.index("Scaled up", first_drop) > first_drop
    assert "toward the operating point" in prose


def test_the_log_tells_the_whole_story_status_the_newest_part() -> None:
    from_status, from_log = text("azure"), text("azure", log=True, limit=200)
    assert "(from status)" in from_status
    assert "(from the operator's log)" in from_log
    earliest_in_log = from_log.split("oldest first")[1].split("Since ")[1][:8]  # the summary's first time
    earliest_in_status = from_status.split("oldest first")[1].split("Since ")[1][:8]
    assert earliest_in_log < earliest_in_status  # the log reaches further back than the 20 kept in status


def test_it_reads_in_a_minute() -> None:
    for name in ("azure", "outage"):
        prose = text(name)
        assert len(prose.split()) < 500  # ten entries and the ledger: one screen, a minute or two to read
        assert prose.count("\n") < 40


def test_the_ledger_is_printed_estimated_with_money_when_a_price_is_given() -> None:
    prose = text("outage", price=Price(0.30, "EUR"))
    assert "Savings against exact quality" in prose
    assert "estimated: power is modelled" in prose  # the simulator's power is the estimate
    assert "since creation" in prose
    assert "EUR" in prose
    assert "unknown" in prose  # the outage's time is unaccounted, and says so
    saved = status("outage").savings
    assert saved is not None
    assert saved.total.unaccounted_seconds >= 150.0


def test_a_model_without_decisions_says_so() -> None:
    console = Console(width=100, color_system=None, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(explain(None, name="chat", namespace="inference", now=NOW))
    prose = console.export_text()
    assert "No decision recorded yet" in prose
    assert "nothing accounted yet" in prose
