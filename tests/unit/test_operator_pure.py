"""The operator's pure helpers: deeper spec checks, scale-down order, apply diffs, observations, logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from thermostat.checks import parse_spec, spec_problems
from thermostat.control.signals import Missing, Reading
from thermostat.control.types import Signal
from thermostat.kube.diff import contains, update_patch
from thermostat.metrics import NoDataError, Signals, StaleDataError
from thermostat.observe import Workload, build_observation
from thermostat.scaledown import pods_to_remove
from thermostat.settings import OperatorSettings
from thermostat.telemetry import JsonFormatter
from thermostat.workload import configmap_temperature, initial_settings

pytestmark = pytest.mark.fast

BASE: dict[str, Any] = {"model": {"image": "img"}, "slo": {"targetSeconds": 1.0}, "replicas": {"max": 3}}


def test_deeper_checks_name_the_field_and_the_fix() -> None:
    spec, problem = parse_spec({**BASE, "model": {"image": "img", "resources": {"memory": "lots"}}})
    assert spec is not None
    assert problem is None
    problems = spec_problems(spec, default_prometheus_url=None)
    assert any("spec.model.resources.memory" in p and "16Gi" in p for p in problems)
    assert any("THERMOSTAT_PROMETHEUS_URL" in p for p in problems)
    spec, _ = parse_spec({**BASE, "metrics": {"queries": {"requestRate": "sum(rate(x[1m]))"}}})
    assert spec is not None
    (only,) = spec_problems(spec, default_prometheus_url="http://p:9090")
    assert only.startswith("spec.metrics.queries.requestRate must contain {selector}")
    assert spec_problems(parse_spec(BASE)[0], default_prometheus_url="http://p:9090") == []  # type: ignore[arg-type]


def test_unparseable_spec_says_where() -> None:
    spec, problem = parse_spec({**BASE, "replicas": {"min": 4, "max": 2}})
    assert spec is None
    assert problem is not None
    assert "replicas.min must not exceed replicas.max" in problem


def pod(name: str, created: str, *, ready: bool, leaving: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if leaving:
        meta["deletionTimestamp"] = created
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_scale_down_removes_unready_then_newest_pods() -> None:
    pods = [
        pod("old", "2026-01-01T00:00:00Z", ready=True),
        pod("new", "2026-01-03T00:00:00Z", ready=True),
        pod("cold", "2026-01-02T00:00:00Z", ready=False),
        pod("gone", "2026-01-04T00:00:00Z", ready=False, leaving=True),
    ]
    assert pods_to_remove(pods, 2) == ["cold", "new"]
    assert pods_to_remove(pods, 0) == []


def test_live_objects_with_server_defaults_count_as_applied() -> None:
    desired = {"spec": {"ports": [{"name": "http", "port": 8000}], "flag": False}, "metadata": {"labels": {"a": "1"}}}
    live = {"spec": {"ports": [{"name": "http", "port": 8000, "protocol": "TCP"}], "flag": False, "clusterIP": "x"},
            "metadata": {"labels": {"a": "1", "b": "2"}}}  # fmt: skip
    assert contains(live, desired)
    assert not contains(live, {"spec": {"ports": [{"name": "http", "port": 8001}]}})
    assert not contains({"spec": {"flag": 0}}, {"spec": {"flag": False}})
    patch = update_patch({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n", "labels": {}}, "data": {}})
    assert patch == {"data": {}, "metadata": {"labels": {}}}


def test_configmap_temperature_and_initial_settings() -> None:
    assert configmap_temperature({"data": {"routing_temperature": "0.6"}}) == 0.6
    assert configmap_temperature({"data": {"routing_temperature": "hot"}}) is None
    assert configmap_temperature({"data": {"routing_temperature": "1.5"}}) is None
    spec, _ = parse_spec({**BASE, "replicas": {"min": 2, "max": 3}})
    assert spec is not None
    body = {"status": {"current": {"routingTemperature": 0.7, "replicas": 3}}}
    assert initial_settings(body, spec, None) == (0.7, 3)
    assert initial_settings({}, spec, {"data": {"routing_temperature": "0.5"}}) == (0.5, 2)


def test_observation_keeps_unknowns_as_missing_with_the_laws_words() -> None:
    signals = Signals(values={Signal.LATENCY: 0.4, Signal.POWER: 200.0}, power_source="estimate")
    signals.errors = {Signal.REQUEST_RATE: StaleDataError("old"), Signal.QUALITY: NoDataError("none")}
    signals.missing = {Signal.REQUEST_RATE: "Stale: old", Signal.QUALITY: "NoData: none"}
    workload = Workload.from_deployment({"metadata": {"name": "d"}, "spec": {"replicas": 2}, "status": {}})
    observation = build_observation(10.0, 0.8, workload, signals)
    assert (observation.replicas, observation.ready_replicas) == (2, 0)
    assert isinstance(observation.request_rate, Missing)
    assert observation.latency_s == Reading(0.4, 10.0)
    missing = observation.missing_signals()
    assert missing[Signal.REQUEST_RATE] == "stale"
    assert missing[Signal.QUALITY].startswith("NoData")
    assert observation.power_source == "estimate"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THERMOSTAT_PROMETHEUS_URL", "http://prom:9090")
    monkeypatch.setenv("THERMOSTAT_NAMESPACES", '["a", "b"]')
    settings = OperatorSettings()
    assert settings.prometheus_url == "http://prom:9090"
    assert settings.namespaces == ["a", "b"]
    monkeypatch.setenv("THERMOSTAT_PROMETHEUS_URL", "prom:9090")
    with pytest.raises(ValueError, match="prometheus_url"):
        OperatorSettings()


def test_logs_are_one_json_object_per_line() -> None:
    record = logging.LogRecord("thermostat.loop", logging.INFO, __file__, 1, "run %s", ("ok",), None)
    record.k8s_ref = {"namespace": "ns", "name": "chat", "kind": "RoutedModel"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "run ok"
    assert entry["object"] == {"namespace": "ns", "name": "chat", "kind": "RoutedModel"}


def test_replicas_reset_twice_after_we_set_them_is_a_conflict_until_the_spec_changes() -> None:
    from thermostat.overrides import OverrideTracker

    tracker, key = OverrideTracker(), ("ns", "chat")
    assert tracker.observe(key, generation=1, ours=3, previous=3, live=3) is None  # steady
    assert tracker.observe(key, generation=1, ours=None, previous=2, live=5) is None  # a person's change, not an undo
    assert tracker.observe(key, generation=1, ours=3, previous=3, live=1) is None  # our 3 undone once
    message = tracker.observe(key, generation=1, ours=3, previous=3, live=1)  # and again
    assert message is not None
    assert "GitOps" in message
    assert tracker.observe(key, generation=1, ours=3, previous=1, live=1) is not None  # sticky
    assert tracker.observe(key, generation=2, ours=3, previous=1, live=1) is None  # the spec was edited
