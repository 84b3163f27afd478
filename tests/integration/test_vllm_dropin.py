"""Drop-in on a stock vLLM Deployment: the real operator, a real Prometheus, load the replicas change.

The user's Deployment ``vllm`` runs stock vLLM (no routing knob); the RoutedModel drives it with
``targetRef`` and ``metrics.preset: vLLM``. Prometheus scrapes a ``VllmPlant`` (replayed vLLM and
dcgm-exporter fixtures whose values come from a queue of the Deployment's ready replicas, read from
the emulated API) and dcgm-exporter as a ServiceMonitor without honorLabels would. An overload
makes the operator add replicas — and only replicas — until the SLO holds; with light load it
removes them, once it has learned the replica's capacity (``CapacityKnown``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from integration_support import NAMESPACE, Cluster, EmulatedApi, OperatorProcess, publish_pod, wait_until
from rbac_support import install_discovery_identity
from vllm_plant import VllmPlant

from thermostat_stack.promserver import PrometheusServer
from thermostat_stack.scrape import KubernetesDiscovery

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

TARGET = "vllm"
SLO_S = 6.0


@pytest.fixture
def cluster(emulated_api: EmulatedApi) -> Cluster:
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    cluster.create_deployment(TARGET)
    return cluster


@pytest.fixture
def plant(cluster: Cluster) -> Iterator[VllmPlant]:
    # The truth: 1.5 req/s per replica, 2 s alone. The law is told 400 tokens/s (~2 req/s): a wrong hint.
    plant = VllmPlant(lambda: cluster.ready_replicas(TARGET), pod="chat-0", per_replica_rps=1.5, lone_s=2.0)
    yield plant
    plant.close()


@pytest.fixture
def prometheus(emulated_api: EmulatedApi, cluster: Cluster, plant: VllmPlant) -> Iterator[PrometheusServer]:
    publish_pod(cluster, "chat-0", plant.vllm.port)
    token, _ = install_discovery_identity(emulated_api.kubeconfig)
    dcgm = {"job_name": "dcgm", "honor_labels": False,
            "static_configs": [{"targets": [plant.dcgm.address],
                                "labels": {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x"}}]}  # fmt: skip
    discovery = KubernetesDiscovery(emulated_api.url, token)
    with PrometheusServer(discovery=discovery, jobs=[dcgm], scrape_interval_s=0.5) as server:
        server.wait_for_series('up{routedmodel="chat",pod="chat-0"} == 1', timeout_s=30)
        yield server


def dropin_spec() -> dict[str, Any]:
    return {
        "targetRef": {"name": TARGET},
        "slo": {"targetSeconds": SLO_S, "windowSeconds": 15},
        "replicas": {"min": 1, "max": 5, "capacityHintTokensPerSecond": 400},
        "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10,
                     "scaleDown": {"stabilizationWindowSeconds": 5, "maxStepReplicas": 1}},
        "metrics": {"preset": "vLLM"},
    }  # fmt: skip


def test_stock_vllm_keeps_its_replicas_until_capacity_is_learned_then_gets_replicas_only(
    cluster: Cluster, plant: VllmPlant, operator: OperatorProcess
) -> None:
    cluster.kube.apps.patch_namespaced_deployment_scale(TARGET, NAMESPACE, {"spec": {"replicas": 3}})
    wait_until(lambda: cluster.ready_replicas(TARGET) == 3, timeout_s=30, what="3 ready replicas")
    plant.set_rate(0.5)  # light: one replica would do, but the law only has a guess of its capacity
    spec = dropin_spec()
    cluster.create_routedmodel(spec)
    created = time.monotonic()
    learning = wait_until(
        lambda: (c := cluster.condition("CapacityKnown")).get("reason") == "LearningOnline" and c,
        timeout_s=60, what="CapacityKnown=False while capacity is a guess",
    )  # fmt: skip
    assert "no scale-down" in learning["message"]
    wait_until(lambda: cluster.ready_replicas(TARGET) < 3, timeout_s=120, what="a scale-down once capacity is learned")
    evidence_s = 2 * spec["slo"]["windowSeconds"]  # two SLO windows of observations (thermostat.control.online)
    assert time.monotonic() - created >= evidence_s - 1.0, "scaled down on a guessed capacity"
    wait_until(lambda: cluster.condition("CapacityKnown").get("status") == "True", timeout_s=10, what="learned")

    plant.set_rate(4.0)  # one replica serves 1.5 req/s: the queue grows until replicas are added
    wait_until(lambda: cluster.ready_replicas(TARGET) >= 3, timeout_s=120, what="replicas added for the overload")
    wait_until(lambda: cluster.condition("SLOMet").get("status") == "True", timeout_s=120, what="the SLO met again")
    decisions = cluster.status().get("decisions", [])
    assert decisions
    assert all("replicas only" in d["reason"] for d in decisions if "replicas" in d["reason"])
    assert not cluster.events("RoutingTemperatureChanged")  # no routing knob: never written
    assert cluster.kube.read("ConfigMap", NAMESPACE, "chat-routing") is None  # nothing created for it
