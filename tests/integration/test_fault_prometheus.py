"""Faults on the metrics path. Prometheus SIGKILLed at the start of a burst: the real operator keeps
controlling on a direct scrape of the pod's /metrics (status says ``source: direct``, MetricsAvailable
``DirectScrape``), adds the replicas the burst needs, never scales down, and returns to Prometheus
when it restarts. The pod's vLLM SIGKILLed and restarted after its samples left the window: held
while it is gone, and its zero counters after are not read as idle, so nothing scales down.

The plant is ``VllmPlant``: a stock-vLLM exposition whose queue and latency follow the ready
replicas the operator set (read from the emulated API), scraped by a real Prometheus through
Kubernetes discovery. The figures are printed (``pytest -s``) and recorded in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from integration_support import Cluster, EmulatedApi, OperatorProcess, publish_pod, wait_until
from rbac_support import install_discovery_identity
from vllm_plant import VllmPlant

from thermostat_stack.promserver import PrometheusServer
from thermostat_stack.scrape import KubernetesDiscovery

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

TARGET = "vllm"


@pytest.fixture
def cluster(emulated_api: EmulatedApi) -> Cluster:
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    cluster.create_deployment(TARGET)
    return cluster


@pytest.fixture
def plant(cluster: Cluster) -> Iterator[VllmPlant]:
    plant = VllmPlant(lambda: cluster.ready_replicas(TARGET), pod="chat-0", per_replica_rps=1.5, lone_s=2.0)
    yield plant
    plant.close()


@pytest.fixture
def prometheus(emulated_api: EmulatedApi, cluster: Cluster, plant: VllmPlant) -> Iterator[PrometheusServer]:
    publish_pod(cluster, "chat-0", plant.vllm.port)
    token, _ = install_discovery_identity(emulated_api.kubeconfig)
    discovery = KubernetesDiscovery(emulated_api.url, token)
    with PrometheusServer(discovery=discovery, scrape_interval_s=0.5) as server:
        server.wait_for_series('up{routedmodel="chat",pod="chat-0"} == 1', timeout_s=30)
        yield server


class ReplicaLog(threading.Thread):
    """Every value of the Deployment's spec.replicas, polled: a scale-down is any decrease."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster, self._halt = cluster, threading.Event()
        self.seen: list[tuple[float, int]] = []

    def run(self) -> None:
        while not self._halt.wait(0.2):
            replicas = self.cluster.replicas(TARGET)
            if replicas is not None and (not self.seen or self.seen[-1][1] != replicas):
                self.seen.append((time.monotonic(), replicas))

    def scale_downs(self) -> int:
        return sum(1 for (_, a), (_, b) in zip(self.seen, self.seen[1:], strict=False) if b < a)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def source(cluster: Cluster) -> str | None:
    return (cluster.status().get("observation") or {}).get("source")


def direct_and_fresh(cluster: Cluster) -> bool:
    available = cluster.condition("MetricsAvailable")
    return (available.get("status"), available.get("reason")) == ("True", "DirectScrape")


def restart(server: PrometheusServer) -> None:
    """Start the killed server again on its port and data (its discovery helper restarts with it)."""
    if server.pod_discovery is not None:
        server.pod_discovery.stop()
        server.pod_discovery = None
    server.start()


def spec() -> dict[str, Any]:
    return {
        "targetRef": {"name": TARGET},
        "slo": {"targetSeconds": 6.0, "windowSeconds": 15},
        "replicas": {"min": 1, "max": 5, "capacityHintTokensPerSecond": 300},
        "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10,
                     "scaleDown": {"stabilizationWindowSeconds": 5, "maxStepReplicas": 1}},
        "metrics": {"preset": "vLLM"},
    }  # fmt: skip


def test_prometheus_killed_mid_burst_control_continues_on_direct_scrape(
    cluster: Cluster, plant: VllmPlant, prometheus: PrometheusServer, operator: OperatorProcess
) -> None:
    plant.set_rate(0.5)
    cluster.create_routedmodel(spec())
    wait_until(lambda: source(cluster) == "prometheus", timeout_s=60, what="control on Prometheus")
    replicas = ReplicaLog(cluster)
    replicas.start()
    assert prometheus.process is not None
    prometheus.process.kill()  # SIGKILL, no shutdown
    prometheus.process.wait()
    killed = time.monotonic()
    plant.set_rate(4.0)  # one replica serves 1.5 req/s: only more replicas bring the latency back
    try:
        wait_until(lambda: source(cluster) == "direct", timeout_s=30, what="status.observation.source=direct")
        # The first direct period has one scrape, no rate: held; the next has two.
        wait_until(lambda: direct_and_fresh(cluster), timeout_s=15, what="MetricsAvailable True, DirectScrape")
        on_direct = time.monotonic() - killed
        wait_until(lambda: (cluster.replicas(TARGET) or 0) >= 3, timeout_s=60, what="replicas added on direct scrape")
        scaled = time.monotonic() - killed
        assert source(cluster) == "direct"
        restart(prometheus)
        restarted = time.monotonic()
        wait_until(lambda: source(cluster) == "prometheus", timeout_s=30, what="back on Prometheus")
        back = time.monotonic() - restarted
    finally:
        replicas.stop()
    print(
        f"\nFAULT prometheus-killed-mid-burst: served={plant.counters['stop']:.0f} "
        f"queued={plant.backlog:.0f} scale_downs={replicas.scale_downs()} replicas={[r for _, r in replicas.seen]} "
        f"to_direct_s={on_direct:.1f} to_3_replicas_s={scaled:.1f} back_to_prometheus_s={back:.1f}"
    )
    assert replicas.scale_downs() == 0, replicas.seen


class ConditionLog(threading.Thread):
    """Every SLOMet reason and MetricsAvailable status the operator wrote, polled, in order."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster, self._halt = cluster, threading.Event()
        self.seen: list[tuple[str | None, str | None]] = []

    def run(self) -> None:
        while not self._halt.wait(0.2):
            slo_met, available = self.cluster.condition("SLOMet"), self.cluster.condition("MetricsAvailable")
            now = (slo_met.get("reason"), available.get("status"))
            if not self.seen or self.seen[-1] != now:
                self.seen.append(now)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def window_samples(prometheus: PrometheusServer) -> int:
    """How many samples of the pod's success counter the SLO window (15 s) holds now."""
    answer = prometheus.query('count_over_time(vllm:request_success_total{pod="chat-0",finished_reason="stop"}[15s])')
    return int(float(answer[0]["value"][1])) if answer else 0


def steady(log: ReplicaLog, hold_s: float) -> bool:
    return bool(log.seen) and time.monotonic() - log.seen[-1][0] >= hold_s


@pytest.mark.timeout(240)
def test_a_pod_restarted_after_a_gap_longer_than_the_window_is_not_read_as_idle(
    cluster: Cluster, plant: VllmPlant, prometheus: PrometheusServer, operator: OperatorProcess
) -> None:
    """The pod's vLLM SIGKILLed under load and back (counters at zero) once its samples left the window.

    While it is gone nothing is known (MetricsAvailable False: held); when it is back its success
    counter reads a fresh zero before its first request finishes, which is not a window without
    requests: the law must not scale down on it, nor say SLOMet Idle.
    """
    plant.set_rate(2.0)  # one replica serves 1.5 req/s: two or more are needed
    cluster.create_routedmodel(spec())
    replicas = ReplicaLog(cluster)
    replicas.start()
    conditions = ConditionLog(cluster)
    try:
        wait_until(lambda: (cluster.replicas(TARGET) or 0) >= 2, timeout_s=60, what="replicas for 2 req/s")
        # The law may scale down from here on (no profile: not before it has learned the replica).
        wait_until(lambda: cluster.condition("CapacityKnown").get("status") == "True", timeout_s=90,
                   what="CapacityKnown True (LearnedOnline)")  # fmt: skip
        wait_until(lambda: steady(replicas, 10.0), timeout_s=90, what="replicas unchanged for 10 s")
        before = replicas.seen[-1][1]
        conditions.start()
        plant.kill()
        killed = time.monotonic()
        wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "False", timeout_s=30,
                   what="MetricsAvailable False while the pod is gone")  # fmt: skip
        noticed = time.monotonic() - killed
        wait_until(lambda: window_samples(prometheus) == 0, timeout_s=60, what="no dead pod sample in the window")
        plant.restart(first_done_s=8.0)  # long first generations: longer than the stabilization window
        restarted = time.monotonic()
        wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=30,
                   what="MetricsAvailable True once the pod is back")  # fmt: skip
        back = time.monotonic() - restarted
        # Until the window is full of the new process's samples and a stabilization window (5 s) after.
        wait_until(lambda: window_samples(prometheus) >= 25, timeout_s=60, what="a window of the new process's samples")
        wait_until(lambda: cluster.condition("SLOMet").get("reason") not in (None, "LatencyUnknown"), timeout_s=30,
                   what="a latency read again")  # fmt: skip
        settled = time.monotonic()
        wait_until(lambda: time.monotonic() - settled >= 6.0 or replicas.scale_downs() > 0, timeout_s=10,
                   what="a stabilization window after the restart")  # fmt: skip
    finally:
        replicas.stop()
        conditions.stop()
    after_kill = [r for t, r in replicas.seen if t >= killed]
    print(
        f"\nFAULT pod-restart-after-gap: replicas={[r for _, r in replicas.seen]} replicas_before={before} "
        f"replicas_after_kill={after_kill} "
        f"scale_downs={replicas.scale_downs()} lost={plant.lost:.0f} metrics_false_after_s={noticed:.1f} "
        f"gap_s={restarted - killed:.1f} metrics_true_after_restart_s={back:.1f} conditions={conditions.seen}"
    )
    assert replicas.scale_downs() == 0, replicas.seen
    assert ("Idle", "True") not in conditions.seen, conditions.seen
