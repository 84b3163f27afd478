"""The operator's pure helpers: deeper spec checks, scale-down order, apply diffs, observations, logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from thermostat.checks import parse_spec, spec_problems
from thermostat.kube.diff import contains, update_patch
from thermostat.reconcile.world import configmap_temperature
from thermostat.scaledown import pods_to_remove
from thermostat.settings import OperatorSettings
from thermostat.telemetry import JsonFormatter

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


def test_configmap_temperature_reads_only_a_temperature_in_range() -> None:
    assert configmap_temperature({"data": {"routing_temperature": "0.6"}}) == 0.6
    assert configmap_temperature({"data": {"routing_temperature": "hot"}}) is None
    assert configmap_temperature({"data": {"routing_temperature": "1.5"}}) is None
    assert configmap_temperature(None) is None


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THERMOSTAT_PROMETHEUS_URL", "http://prom:9090")
    monkeypatch.setenv("THERMOSTAT_NAMESPACES", '["a", "b"]')
    settings = OperatorSettings()
    assert settings.prometheus_url == "http://prom:9090"
    assert settings.namespaces == ["a", "b"]
    monkeypatch.setenv("THERMOSTAT_PROMETHEUS_URL", "prom:9090")
    with pytest.raises(ValueError, match="prometheus_url"):
        OperatorSettings()


def test_priority_by_start_ranks_the_earlier_started_replica_higher() -> None:
    by_start = OperatorSettings(peering="thermostat", priority_by_start=True)
    # A replica started later (a restart, a rollout's new pod) never ranks above a running one.
    assert by_start.peering_priority(1_700_000_000.0) > by_start.peering_priority(1_700_000_000.5)
    assert by_start.peering_priority(1_700_000_000.0) != by_start.peering_priority(1_700_000_000.002)
    fixed = OperatorSettings(peering="thermostat", priority=100)
    assert fixed.peering_priority(1_700_000_000.0) == fixed.peering_priority(1_800_000_000.0) == 100


def test_priority_by_start_without_peering_or_with_a_fixed_priority_is_refused() -> None:
    with pytest.raises(ValueError, match="THERMOSTAT_PRIORITY_BY_START needs THERMOSTAT_PEERING"):
        OperatorSettings(priority_by_start=True)
    with pytest.raises(ValueError, match="not both"):
        OperatorSettings(peering="thermostat", priority_by_start=True, priority=5)


def test_logs_are_one_json_object_per_line() -> None:
    record = logging.LogRecord("thermostat.reconcile", logging.INFO, __file__, 1, "run %s", ("ok",), None)
    record.k8s_ref = {"namespace": "ns", "name": "chat", "kind": "RoutedModel"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "run ok"
    assert entry["object"] == {"namespace": "ns", "name": "chat", "kind": "RoutedModel"}
