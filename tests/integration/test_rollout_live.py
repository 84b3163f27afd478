"""A staged rollout in the closed loop: the real operator process, the emulated API server, a real Prometheus.

Two runtime pods are published as the kubelet would report them, each a ``SeriesExporter`` on its own
port, beside the one the emulated Deployment runs; Prometheus discovers them through the emulated API
with the chart's relabelling, which copies the pod label ``thermostat.dev/track`` into ``track``. The
law's operating point falls below exact by more than the step, so the operator stages it on one canary
pod (the first by name, ``chat-0``). The operator is restarted mid-rollout and resumes it from status.
The canary's exporter reports a quality loss far over the budget: the analysis fails and the operator
rolls back, while the stable key never leaves 1.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_support import (
    NAMESPACE,
    Cluster,
    EmulatedApi,
    LoadDriver,
    OperatorProcess,
    SeriesExporter,
    publish_pod,
    wait_until,
)
from rbac_support import discovering_prometheus, operator_within_table

from thermostat_stack.promserver import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]
PODS = ("chat-0", "chat-1")
ASSUMED_PROFILE = Path(__file__).resolve().parents[2] / "runtime" / "thermostat_runtime" / "profiles" / "assumed.json"


class ShadowLoad(LoadDriver):
    """A runtime's series under load, with shadow tokens losing ``kl`` nats each (0: none measured)."""

    def __init__(self, exporter: SeriesExporter, *, kl: float) -> None:
        super().__init__(exporter)
        self.kl = kl
        self._tick = threading.Event()

    def run(self) -> None:
        while not self._tick.wait(1.0):  # one request a second: no SLO pressure, so no drop below the operating point
            self.exporter.request_duration.observe(self.latency_s)
            self.exporter.requests.labels(code="200").inc()
            self.exporter.tokens.labels(kind="generated").inc(self.tokens)
            self.exporter.power.labels(gpu="0", source="estimate").set(self.power_w)
            self.exporter.energy.labels(gpu="0", source="estimate").inc(self.power_w)
            if self.kl > 0:
                self.exporter.shadow.inc(40)
                self.exporter.shadow_agree.inc(30)
                self.exporter.shadow_kl.inc(40 * self.kl)
                self.exporter.shadow_kl_sq.inc(40 * 2 * self.kl * self.kl)

    def stop(self) -> None:
        self._tick.set()


def _ready_pod(cluster: Cluster, name: str, port: int) -> None:
    publish_pod(cluster, name, port)
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    cluster.kube.core.patch_namespaced_pod_status(name, NAMESPACE, ready, _preload_content=False)


@pytest.fixture
def tracks(emulated_api: EmulatedApi) -> Iterator[dict[str, ShadowLoad]]:
    """chat-0 loses quality badly when routed (kl 0.1 nats/token, 10.5%); chat-1 reports no shadow (exact)."""
    exporters = {name: SeriesExporter() for name in PODS}
    cluster = Cluster(emulated_api.kubeconfig)
    loads = {"chat-0": ShadowLoad(exporters["chat-0"], kl=0.1), "chat-1": ShadowLoad(exporters["chat-1"], kl=0.0)}
    for name, exporter in exporters.items():
        _ready_pod(cluster, name, exporter.port)
        loads[name].latency_s = 1.0
        loads[name].start()
    yield loads
    for name in PODS:
        loads[name].stop()
        exporters[name].close()


@pytest.fixture
def prometheus(emulated_api: EmulatedApi, tracks: dict[str, ShadowLoad]) -> Iterator[PrometheusServer]:
    with discovering_prometheus(emulated_api, scrape_interval_s=0.5) as (server, _):
        server.wait_for_series('up{routedmodel="chat",pod="chat-1"} == 1', timeout_s=30)
        yield server


@pytest.fixture
def operator(
    emulated_api: EmulatedApi, operator_kubeconfig: Path, prometheus: PrometheusServer, tmp_path: Path
) -> Iterator[OperatorProcess]:
    # The assumed GPU profile: this light load is then far from the SLO, so the law never drops the
    # temperature below its operating point to hold it, and the stable key must stay exact.
    log = tmp_path / "operator.log"
    with operator_within_table(emulated_api, operator_kubeconfig, prometheus.url, log,
                               THERMOSTAT_PROFILE=str(ASSUMED_PROFILE)) as process:  # fmt: skip
        yield process


def spec() -> dict[str, Any]:
    return {
        "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}},
        "slo": {"targetSeconds": 10, "windowSeconds": 15},
        "replicas": {"min": 1, "max": 1},
        "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10},
        "rollout": {"steps": [10], "analysis": {"intervalSeconds": 30, "minRequests": 10, "minShadowTokens": 100}},
    }


def test_a_harmful_candidate_is_rolled_back_and_the_stable_key_never_changes(
    emulated_api: EmulatedApi, operator: OperatorProcess, prometheus: PrometheusServer
) -> None:
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_routedmodel(spec())
    stable_seen: set[str | None] = set()

    def phase() -> str | None:
        if cluster.temperature() is not None:
            stable_seen.add(cluster.temperature())
        return (cluster.status().get("rollout") or {}).get("phase")

    wait_until(lambda: phase() == "Progressing", timeout_s=90, what="a rollout started")
    pod = cluster.kube.core.read_namespaced_pod("chat-0", NAMESPACE)
    assert pod.metadata.labels.get("thermostat.dev/track") == "canary"
    configmap = cluster.kube.read("ConfigMap", NAMESPACE, "chat-routing")
    assert configmap is not None
    assert "canary.routing_temperature" in configmap["data"]
    prometheus.wait_for_series('thermostat_requests_total{pod="chat-0",track="canary"}', timeout_s=30)
    started = cluster.status()["rollout"]["started"]
    operator.restart()  # the rollout lives in status: a new operator process resumes it, interval and all
    try:
        wait_until(lambda: phase() == "RolledBack", timeout_s=120, what="the canary rolled back")
    finally:
        print(cluster.status().get("rollout"), [d["reason"] for d in cluster.status().get("decisions", [])])
    assert stable_seen == {"1.0"}
    rollout = cluster.status()["rollout"]
    assert rollout["started"] == started
    assert [h["action"] for h in rollout["history"]] == ["Started", "RolledBack"]
    assert rollout["lastAnalysis"]["result"] == "Failed"
    assert "quality loss" in rollout["lastAnalysis"]["message"]
    configmap = cluster.kube.read("ConfigMap", NAMESPACE, "chat-routing")
    assert configmap is not None
    assert "canary.routing_temperature" not in configmap["data"]
    pod = cluster.kube.core.read_namespaced_pod("chat-0", NAMESPACE)
    assert pod.metadata.labels.get("thermostat.dev/track") == "stable"
    assert cluster.events("RolloutRolledBack")
