"""``thermostat explain`` end to end: the real operator against the emulated API and a real Prometheus.

A burst makes the operator act; then ``thermostat explain`` (a child process, reading status through
the API as a user's kubectl would, and the operator's JSON log) tells it, and the ledger it kept.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from integration_support import (
    NAME,
    NAMESPACE,
    Cluster,
    EmulatedApi,
    LoadDriver,
    OperatorProcess,
    child_env,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def chat_spec() -> dict[str, Any]:
    return {
        "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}},
        "slo": {"targetSeconds": 10, "windowSeconds": 15},
        "replicas": {"min": 1, "max": 3},
        "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10},
        "quality": {"minRoutingTemperature": 0.3},
    }


def explain(emulated_api: EmulatedApi, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "thermostat", "explain", NAME, "-n", NAMESPACE,
               "--kubeconfig", str(emulated_api.kubeconfig), *args]  # fmt: skip
    return subprocess.run(command, env=child_env(COLUMNS="140"), capture_output=True, text=True, timeout=60)


def test_explain_tells_what_the_operator_did_and_what_it_saved(
    emulated_api: EmulatedApi, operator: OperatorProcess, load: LoadDriver
) -> None:
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    cluster.create_routedmodel(chat_spec())
    load.set(rate=0.5, latency_s=4.0)
    wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=60, what="metrics")
    load.set(rate=6.0, latency_s=30.0)  # a burst: p95 three times the SLO
    wait_until(lambda: float(cluster.temperature() or 1) < 1.0, timeout_s=60, what="temperature below 1")
    wait_until(
        lambda: (cluster.status().get("savings") or {}).get("total", {}).get("accountedSeconds", 0) > 2,
        timeout_s=30,
        what="the ledger accounting",
    )
    decisions = cluster.status()["decisions"]
    assert any(d.get("rule") == "SLOExcursion" and d.get("outcome") == "Applied" for d in decisions), decisions

    told = explain(emulated_api, "--price-per-kwh", "0.25", "--currency", "EUR")
    assert told.returncode == 0, told.stderr
    assert f"RoutedModel {NAMESPACE}/{NAME}" in told.stdout
    assert "Latency excursion" in told.stdout
    assert "temperature lowered 1.00" in told.stdout
    assert "Savings against exact quality" in told.stdout
    assert "estimated" in told.stdout
    assert "EUR" in told.stdout

    lines = [json.loads(line) for line in operator.log.read_text().splitlines() if '"decision"' in line]
    assert lines
    assert all(line["object"]["name"] == NAME for line in lines)
    from_log = explain(emulated_api, "--log", str(operator.log), "--limit", "50")
    assert from_log.returncode == 0, from_log.stderr
    assert "(from the operator's log)" in from_log.stdout

    absent = subprocess.run(
        [sys.executable, "-m", "thermostat", "explain", "nope", "-n", NAMESPACE, "--kubeconfig",
         str(emulated_api.kubeconfig)],
        env=child_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert absent.returncode == 2
    assert "RoutedModel it/nope not found" in absent.stderr
