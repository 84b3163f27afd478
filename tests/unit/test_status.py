"""Status assembly: condition conventions, the Ready summary, display strings, the bounded history."""

from __future__ import annotations

from dataclasses import replace

import pytest

from thermostat.api import RoutedModelSpec, Settings
from thermostat.api.status import MAX_DECISIONS, DecisionRecord
from thermostat.control.signals import Idle, Missing, Reading
from thermostat.control.types import Decision, Observation, Verdict
from thermostat.status import (
    Health,
    RunOutcome,
    build_status,
    find_condition,
    ready_verdict,
    set_condition,
    status_patch,
)
from thermostat.status.display import format_latency, format_power
from thermostat.status.history import record_decision

pytestmark = pytest.mark.fast

SPEC = RoutedModelSpec.model_validate(
    {"model": {"image": "img"}, "slo": {"targetSeconds": 0.6}, "replicas": {"max": 4}, "budget": {"powerWatts": 1400}}
)
HEALTHY = Health(ready_replicas=2, replicas=2)


def decision(temperature: float = 0.8, replicas: int = 2, reason: str = "steady") -> Decision:
    return Decision(
        routing_temperature=temperature,
        replicas=replicas,
        reason=reason,
        memory={"k": 1},
        conditions={"SLOMet": Verdict("True", "WithinSLO", "p95 0.52s <= 0.60s")},
    )


SIGNALS = (
    "latency_s", "request_rate", "served_rate", "shed_rate", "token_rate", "power_w", "energy_rate_w",
    "quality_kl_nats", "shadow_token_rate", "quality_agreement", "queue_depth",
)  # fmt: skip


def observation(*, missing: dict[str, str] | None = None, **fields: object) -> Observation:
    """Numbers become Readings, ``missing`` names Missing signals (by field), the rest are Idle."""
    time = float(fields.pop("time", 1000.0))  # type: ignore[arg-type]
    base: dict[str, object] = {"routing_temperature": 0.8, "replicas": 2, "ready_replicas": 2, "window_s": 60.0}
    base["power_source"] = fields.pop("power_source", None)
    for name in SIGNALS:
        value = fields.pop(name, None)
        base[name] = Idle(time) if value is None else Reading(float(value), time)  # type: ignore[arg-type]
    for name, why in (missing or {}).items():
        base[name] = Missing(why)
    assert not fields, fields
    return Observation(time=time, **base)  # type: ignore[arg-type]


def outcome(now: float, **fields: object) -> RunOutcome:
    base: dict[str, object] = {
        "now": now,
        "generation": 3,
        "current": Settings(routing_temperature=0.8, replicas=2, ready_replicas=2),
        "health": HEALTHY,
    }
    base.update(fields)
    return RunOutcome(**base)  # type: ignore[arg-type]


def test_transition_time_moves_only_when_status_flips() -> None:
    first = set_condition([], "SLOMet", Verdict("True", "WithinSLO", "a"), now="t1", generation=1)
    same = set_condition(first, "SLOMet", Verdict("True", "WithinSLO", "b"), now="t2", generation=2)
    flipped = set_condition(same, "SLOMet", Verdict("False", "SLOMissed", "c"), now="t3", generation=2)
    assert first[0].last_transition_time == "t1"
    assert (same[0].last_transition_time, same[0].message, same[0].observed_generation) == ("t1", "b", 2)
    assert (flipped[0].last_transition_time, flipped[0].reason) == ("t3", "SLOMissed")


def test_ready_summary_names_what_to_fix() -> None:
    assert ready_verdict(Health(invalid_spec="spec.quality: floor above T_max")).reason == "InvalidSpec"
    assert "spec.targetRef.name" in ready_verdict(Health(target_missing="legacy")).message
    assert ready_verdict(Health(ready_replicas=0, replicas=1)).reason == "WaitingForReplicas"
    serving = ready_verdict(Health(ready_replicas=1, replicas=2, metrics_problem="latency: stale"))
    assert (serving.status, serving.reason) == ("True", "Serving")
    assert "latency: stale" in serving.message


def test_display_strings_for_printer_columns() -> None:
    assert format_latency(0.5249, 0.6) == "0.52s/0.60s"
    assert format_latency(None, 0.6) == "-/0.60s"
    assert format_power(612.4, 1400, estimated=False) == "612W/1400W"
    assert format_power(612.4, 1400, estimated=True) == "~612W/1400W"
    assert format_power(None, None, estimated=False) == "-"
    assert format_power(15_000, None, estimated=False) == "15.0kW"


def test_history_keeps_changes_only_and_is_bounded() -> None:
    history: list[DecisionRecord] = []
    for step in range(3 * MAX_DECISIONS):
        record = DecisionRecord(
            time=str(step), routing_temperature=1.0, replicas=1 + step // 2, reason="r", applied=True
        )
        history = record_decision(history, record)
    assert len(history) == MAX_DECISIONS
    assert history[-1].replicas == 1 + (3 * MAX_DECISIONS - 1) // 2
    assert len({r.replicas for r in history}) == MAX_DECISIONS  # repeats were not recorded


def test_status_records_decision_observation_and_memory() -> None:
    status = build_status(
        None,
        SPEC,
        outcome(
            1000.0,
            observation=observation(latency_s=0.52, power_w=612.0, power_source="estimate", request_rate=4.0,
                                    energy_rate_w=600.0, quality_agreement=0.97, quality_kl_nats=0.01),
            decision=decision(),
            applied=True,
        ),
    )  # fmt: skip
    assert status.observation is not None
    assert status.observation.energy_joules_per_request == pytest.approx(150.0)
    assert status.observation.quality_loss_points == pytest.approx(3.0)
    assert status.observation.quality_loss_percent == pytest.approx(1.005, abs=1e-3)
    assert status.display is not None
    assert status.display.power == "~612W/1400W"
    assert status.decisions[-1].applied is True
    assert status.memory is not None
    assert status.memory.state == {"k": 1}
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert ready.last_transition_time == "1970-01-01T00:16:40Z"
    assert [c.type for c in status.conditions] == ["Ready", "SLOMet"]


def test_missing_figures_are_written_as_nulls_not_left_standing() -> None:
    first = build_status(None, SPEC, outcome(1000.0, observation=observation(latency_s=0.5), decision=decision()))
    second = build_status(
        first,
        SPEC,
        outcome(1015.0, observation=observation(time=1015.0, missing={"latency_s": "stale"}), decision=decision()),
    )
    patch = status_patch(second)
    assert patch["observation"]["latencySeconds"] is None
    assert "latency: stale" in patch["observation"]["missing"]
    assert patch["display"]["latency"] == "-/0.60s"
    assert "energyJoulesPerRequest" in patch["observation"]  # no traffic -> null, never zero
    assert patch["observation"]["energyJoulesPerRequest"] is None


def test_a_direct_scrape_says_so_in_the_observation_and_metrics_available() -> None:
    fresh = Verdict("True", "MetricsFresh", "latency and request rate are fresh")
    made = Decision(0.8, 2, "steady", {"k": 1}, conditions={"MetricsAvailable": fresh})
    direct = replace(observation(latency_s=0.5), metrics_source="direct")
    status = build_status(None, SPEC, outcome(1000.0, observation=direct, decision=made))
    available = find_condition(status.conditions, "MetricsAvailable")
    assert available is not None
    assert (available.status, available.reason) == ("True", "DirectScrape")
    assert "Prometheus failing" in available.message
    assert status.observation is not None
    assert status.observation.source == "direct"
    again = build_status(status, SPEC, outcome(1010.0, observation=observation(latency_s=0.5), decision=made))
    assert find_condition(again.conditions, "MetricsAvailable").reason == "MetricsFresh"  # type: ignore[union-attr]
    assert again.observation is not None
    assert again.observation.source == "prometheus"
