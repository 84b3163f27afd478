"""The staged rollout in the decision audit: each step a ``kind: rollout`` record (status and log), and
``thermostat explain`` telling the steps in prose. Runs the real reconcile through the small cluster of
``test_rollout_reconcile``."""

from __future__ import annotations

import logging

import pytest
from rich.console import Console
from tests.unit.test_rollout_reconcile import GOOD, HARMFUL, NAME, NAMESPACE, Cluster

from thermostat.api.status import DecisionRecord, RoutedModelStatus
from thermostat.reconcile.audit import log_decision
from thermostat.status import parse_status
from thermostat.status.explain import explain
from thermostat.telemetry import AUDIT_LOGGER

pytestmark = pytest.mark.fast


def _status(cluster: Cluster) -> RoutedModelStatus:
    status = parse_status(cluster.status)
    assert status is not None
    return status


def _prose(status: RoutedModelStatus, now: float) -> str:
    console = Console(width=160, record=True, file=None)
    with console.capture() as captured:
        console.print(explain(status, name=NAME, namespace=NAMESPACE, now=now))
    return captured.get()


def test_each_rollout_step_is_a_rollout_decision_record() -> None:
    cluster = Cluster()
    for now in (1000.0, 1060.0, 1120.0):
        cluster.run(now, tracks=GOOD if now > 1000 else None)
    steps = [d for d in _status(cluster).decisions if d.kind == "rollout"]
    assert [d.rule for d in steps] == ["Started", "Advanced", "Promoted"]
    assert all(d.routing_temperature == pytest.approx(0.6) for d in steps)  # the candidate's
    assert steps[0].before is not None
    assert steps[0].before.routing_temperature == pytest.approx(1.0)
    assert "canary 25% of the pods" in steps[0].reason
    control = [d for d in _status(cluster).decisions if d.kind == "control"]
    assert control  # the law's own records stay beside them


def test_a_run_without_a_step_adds_no_rollout_record() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    cluster.run(1015.0)  # the interval runs on: no step taken
    cluster.run(1030.0)
    steps = [d for d in _status(cluster).decisions if d.kind == "rollout"]
    assert [(d.rule, d.repeats) for d in steps] == [("Started", 0)]


def test_explain_tells_a_rolled_back_rollout_step_by_step() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    cluster.run(1060.0, tracks=HARMFUL)
    prose = _prose(_status(cluster), 1090.0)
    assert "Rollout of temperature 0.60 (stable 1.00): RolledBack" in prose
    assert "Started (canary 25%)" in prose
    assert "RolledBack (canary 0%): analysis failed" in prose
    assert "Last analysis" in prose
    assert "Failed" in prose
    assert "Rollout RolledBack: candidate temperature 0.60 (stable pods at 1.00)" in prose
    assert "2 rollout steps" in prose


def test_the_log_carries_every_rollout_step(caplog: pytest.LogCaptureFixture) -> None:
    cluster, logged = Cluster(), []
    for now, tracks in ((1000.0, None), (1015.0, None), (1060.0, HARMFUL)):
        cluster.run(now, tracks=tracks)
        with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
            for record in cluster.settled.steps:  # what the cycle logs beside the run's own record
                log_decision(NAMESPACE, NAME, record)
    for entry in caplog.records:
        logged.append(DecisionRecord.model_validate(entry.audit_decision, strict=False))  # type: ignore[attr-defined]
    assert [(d.kind, d.rule) for d in logged] == [("rollout", "Started"), ("rollout", "RolledBack")]
    assert "analysis failed" in logged[1].reason
