"""The decision audit: the rule each decision names, its outcome, folding in status, the JSON log line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from control_plant import make_spec
from observations import observed

from thermostat.api.status import MAX_DECISIONS, DecisionRecord, Settings
from thermostat.control import Decision
from thermostat.control import rules as r
from thermostat.reconcile.audit import log_decision
from thermostat.status import Health, RunOutcome, decision_record
from thermostat.status.explain import log_records
from thermostat.status.history import record_decision
from thermostat.telemetry import AUDIT_LOGGER, JsonFormatter

pytestmark = pytest.mark.fast
SPEC = make_spec()


@pytest.mark.parametrize(
    ("move", "rule"),
    [
        (r.Move(0.9, 0.6, 2, 2, 0.9, excursion=True), r.SLO_EXCURSION),
        (r.Move(0.9, 0.6, 2, 2, 0.9, budget_bound=True), r.BUDGET_LIMIT),
        (r.Move(1.0, 0.9, 1, 1, 0.9), r.OPERATING_POINT),
        (r.Move(0.9, 0.8, 2, 2, 0.9), r.PREDICTED_MISS),
        (r.Move(0.6, 0.6, 2, 3, 0.9), r.SCALE_UP),
        (r.Move(0.9, 0.9, 3, 2, 0.9), r.SCALE_DOWN),
        (r.Move(0.6, 0.7, 2, 2, 0.9), r.TEMPERATURE_RISE),
        (r.Move(0.9, 0.9, 3, 3, 0.9, guarded=True), r.SCALE_DOWN_HELD),
        (r.Move(0.9, 0.9, 1, 1, 0.9, idle=True), r.IDLE),
        (r.Move(0.9, 0.90001, 2, 2, 0.9), r.STEADY),  # below the ConfigMap's four decimals: no move
    ],
)
def test_each_decision_names_the_rule_that_drove_it(move: r.Move, rule: str) -> None:
    assert r.rule_for(move) == rule


def test_the_law_names_the_fast_path_when_a_burst_lowers_the_temperature() -> None:
    from control_plant import assumed_profile

    from thermostat.control import decide

    profile = assumed_profile()
    calm = observed(time=100.0, routing_temperature=0.9, replicas=2, ready_replicas=2, latency_s=5.0,
                    request_rate=1.0, token_rate=256.0, queue_depth=0.0)  # fmt: skip
    first = decide(calm, SPEC, None, 100.0, profile=profile)
    burst = observed(time=115.0, routing_temperature=first.routing_temperature, replicas=2, ready_replicas=2,
                     latency_s=40.0, request_rate=30.0, token_rate=7000.0, queue_depth=50.0)  # fmt: skip
    hot = decide(burst, SPEC, first.memory, 115.0, profile=profile)
    assert hot.routing_temperature < first.routing_temperature
    assert hot.rule == r.SLO_EXCURSION
    assert hot.exact is not None
    assert hot.exact.replicas >= 2


def _run(*, applied: bool = True, held: bool = False, error: str | None = None, replicas: int = 3) -> RunOutcome:
    decision = Decision(0.8, replicas, "p95 …: replicas 2→3", {}, held=held, rule=r.SCALE_UP)
    obs = observed(time=1000.0, routing_temperature=0.8, replicas=2, ready_replicas=2, latency_s=0.7,
                   request_rate=3.0, power_w=500.0)  # fmt: skip
    return RunOutcome(
        now=1000.0, generation=1, current=Settings(routing_temperature=0.8, replicas=replicas),
        health=Health(apply_error=error), observation=obs, decision=decision, applied=applied,
        before=Settings(routing_temperature=0.8, replicas=2),
    )  # fmt: skip


def test_the_record_says_what_became_of_the_decision() -> None:
    def outcome(run: RunOutcome, spec=SPEC) -> str | None:
        record = decision_record(run, spec, time="t")
        assert record is not None
        return record.outcome

    assert outcome(_run()) == "Applied"
    assert outcome(_run(replicas=2)) == "Unchanged"
    assert outcome(_run(applied=False, held=True)) == "Held"
    assert outcome(_run(error="refused")) == "Failed"
    assert outcome(_run(applied=False), make_spec(mode="Recommend")) == "Recommended"
    assert outcome(_run(applied=False)) == "NotApplied"


def test_the_record_keeps_what_the_decision_saw_and_the_settings_before() -> None:
    record = decision_record(_run(), SPEC, time="2026-01-01T00:00:00Z")
    assert record is not None
    assert record.seen is not None
    assert (record.seen.latency_seconds, record.seen.request_rate, record.seen.power_watts) == (0.7, 3.0, 500.0)
    assert record.before == Settings(routing_temperature=0.8, replicas=2)
    assert (record.rule, record.replicas) == (r.SCALE_UP, 3)


def _record(step: int, *, replicas: int = 2, rule: str = r.STEADY) -> DecisionRecord:
    return DecisionRecord(time=f"2026-01-01T00:{step // 60:02d}:{step % 60:02d}Z", routing_temperature=0.9,
                          replicas=replicas, reason=f"run {step}", applied=True, rule=rule)  # fmt: skip


def test_repeats_fold_into_one_entry_that_says_how_long_and_why() -> None:
    history: list[DecisionRecord] = []
    for step in range(30):
        history = record_decision(history, _record(step))
    assert len(history) == 1
    (entry,) = history
    assert (entry.repeats, entry.until, entry.reason, entry.last_reason) == (
        29, "2026-01-01T00:00:29Z", "run 0", "run 29"
    )


def test_a_new_rule_with_the_same_settings_is_news_and_the_history_stays_bounded() -> None:
    history = record_decision([_record(0)], _record(1, rule=r.SCALE_DOWN_HELD))
    assert [e.rule for e in history] == [r.STEADY, r.SCALE_DOWN_HELD]
    for step in range(3 * MAX_DECISIONS):
        history = record_decision(history, _record(step, replicas=1 + step))
    assert len(history) == MAX_DECISIONS


def test_every_decision_is_one_json_log_line_that_explain_reads_back() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(AUDIT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        record = decision_record(_run(), SPEC, time="2026-01-01T00:00:00Z")
        assert record is not None
        log_decision("inference", "chat", record)
        log_decision("inference", "other", record)
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    entry = json.loads(lines[0])
    assert entry["object"] == {"namespace": "inference", "name": "chat", "kind": "RoutedModel"}
    assert entry["decision"]["rule"] == r.SCALE_UP
    assert entry["decision"]["before"] == {"routingTemperature": 0.8, "replicas": 2}
    assert "ScaleUp" in entry["message"]
    back, unreadable = log_records([*lines, "plain text line", '{"decision": {"time": 1}}'], namespace="inference",
                                   name="chat")  # fmt: skip
    assert back == [record]
    assert unreadable == 0  # the malformed one has no object of this RoutedModel: not ours to count


def test_the_ledger_is_published_as_counters_of_each_runs_increment() -> None:
    from prometheus_client import REGISTRY

    from thermostat.api.status import Savings, SavingsPeriod
    from thermostat.reconcile.audit import publish_savings

    def ledger(used: float, exact: float) -> Savings:
        total = SavingsPeriod(energy_joules=used, exact_energy_joules=exact, saved_joules=exact - used,
                              quality_loss_percent_mean=0.8)  # fmt: skip
        return Savings(since="s", last_time="t", estimated=True, total=total)

    labels = {"namespace": "audit-test", "routedmodel": "chat", "estimated": "true"}
    publish_savings("audit-test", "chat", None, ledger(100.0, 150.0))
    publish_savings("audit-test", "chat", ledger(100.0, 150.0), ledger(160.0, 230.0))
    assert REGISTRY.get_sample_value("thermostat_operator_energy_joules_total", labels) == 160.0
    assert REGISTRY.get_sample_value("thermostat_operator_exact_energy_joules_total", labels) == 230.0
    assert REGISTRY.get_sample_value("thermostat_operator_energy_saved_joules", labels) == 70.0
    quality = {"namespace": "audit-test", "routedmodel": "chat"}
    assert REGISTRY.get_sample_value("thermostat_operator_quality_loss_percent_mean", quality) == 0.8
