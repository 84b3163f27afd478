"""The vLLM preset's and the DCGM queries against a real Prometheus scraping replayed exporters.

Two dcgm-exporters replay tests/integration/fixtures/dcgm-exporter.prom, one scraped with
``honor_labels: true`` (the GPU's pod stays ``pod``/``namespace``), one without (Prometheus renames
them ``exported_pod``/``exported_namespace`` and the exporter's own target labels win). Their GPUs
belong to the RoutedModel's pods, to another RoutedModel's, to a same-named pod of another namespace,
and to no pod. The RoutedModel's pods replay fixtures/vllm.prom and are found through Kubernetes
discovery against the emulated API, as in a cluster. The operator's own queries must sum exactly
the RoutedModel's GPUs, in watts, and the energy counter's millijoules as watts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from exposition import ReplayExporter, Sample
from integration_support import Cluster, EmulatedApi, publish_pod, wait_until
from rbac_support import install_discovery_identity

from thermostat.api import RoutedModelSpec
from thermostat.control.types import Signal
from thermostat.metrics import OBSERVED, Idle, Reading, Scope, StaleDataError, collect
from thermostat.metrics.prometheus import PrometheusMetrics
from thermostat.metrics.source import MetricsError
from thermostat.metrics.templates import observed_signals
from thermostat_stack.promserver import PrometheusServer
from thermostat_stack.scrape import KubernetesDiscovery

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

# (namespace, pod, watts) per GPU of each node; "" = a GPU no pod holds.
NODE_HONORED = [("it", "chat-0", 300.0), ("it", "other-0", 200.0), ("", "", 61.0)]
NODE_RENAMED = [("it", "chat-1", 250.0), ("prod", "chat-1", 180.0)]
CHAT_WATTS = 300.0 + 250.0


class Gpus:
    """Replays the DCGM fixture for one node's GPUs: power fixed, energy counting up at that power."""

    def __init__(self, gpus: list[tuple[str, str, float]]) -> None:
        self.gpus, self.started = gpus, time.monotonic()
        self.exporter = ReplayExporter("dcgm-exporter.prom", self.replay)

    def replay(self, sample: Sample) -> Iterable[tuple[dict[str, str], float]]:
        elapsed = time.monotonic() - self.started
        for index, (namespace, pod, watts) in enumerate(self.gpus):
            labels = {**sample.labels, "gpu": str(index), "UUID": f"GPU-{id(self):x}-{index}",
                      "device": f"nvidia{index}", "namespace": namespace, "pod": pod,
                      "container": "vllm" if pod else ""}  # fmt: skip
            energy_mj = sample.value + watts * 1000.0 * elapsed
            yield labels, watts if sample.name == "DCGM_FI_DEV_POWER_USAGE" else energy_mj


def vllm_as_fixture(sample: Sample) -> Iterable[tuple[dict[str, str], float]]:
    """A vLLM pod with no traffic: the fixture's values, counters standing still."""
    yield sample.labels, sample.value


def dcgm_job(name: str, address: str, *, honor_labels: bool) -> dict[str, Any]:
    """A dcgm-exporter target as a ServiceMonitor makes it: its own pod and namespace as target labels."""
    labels = {"namespace": "gpu-operator", "pod": f"nvidia-dcgm-exporter-{name}"}
    return {"job_name": f"dcgm-{name}", "honor_labels": honor_labels,
            "static_configs": [{"targets": [address], "labels": labels}]}  # fmt: skip


@pytest.fixture
def gpus() -> Iterator[tuple[Gpus, Gpus]]:
    honored, renamed = Gpus(NODE_HONORED), Gpus(NODE_RENAMED)
    yield honored, renamed
    honored.exporter.close()
    renamed.exporter.close()


@pytest.fixture
def prometheus(emulated_api: EmulatedApi, gpus: tuple[Gpus, Gpus]) -> Iterator[PrometheusServer]:
    vllm = ReplayExporter("vllm.prom", vllm_as_fixture)
    cluster = Cluster(emulated_api.kubeconfig)
    for pod, model in (("chat-0", "chat"), ("chat-1", "chat"), ("other-0", "other")):
        publish_pod(cluster, pod, vllm.port, routedmodel=model)
    token, _ = install_discovery_identity(emulated_api.kubeconfig)
    jobs = [dcgm_job("a", gpus[0].exporter.address, honor_labels=True),
            dcgm_job("b", gpus[1].exporter.address, honor_labels=False)]  # fmt: skip
    discovery = KubernetesDiscovery(emulated_api.url, token)
    with PrometheusServer(discovery=discovery, jobs=jobs, scrape_interval_s=0.5) as server:
        server.wait_for_series('count(up{routedmodel=~"chat|other"} == 1) == 3', timeout_s=30)
        gpu_count = len(NODE_HONORED) + len(NODE_RENAMED)
        server.wait_for_series(f"count(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION) == {gpu_count}", timeout_s=30)
        yield server
    vllm.close()


def vllm_spec() -> RoutedModelSpec:
    return RoutedModelSpec.model_validate({
        "targetRef": {"name": "vllm"}, "slo": {"targetSeconds": 2.0, "windowSeconds": 15},
        "replicas": {"max": 4}, "metrics": {"preset": "vLLM"},
    })  # fmt: skip


def read(source: PrometheusMetrics, signal: str, scope: Scope) -> float:
    def attempt() -> tuple[float] | None:  # a tuple: a reading of 0 is an answer too
        try:
            return (source.read(signal, scope, now=time.time()).value,)
        except MetricsError:
            return None

    return wait_until(attempt, timeout_s=30, what=f"{signal} for {scope}")[0]


def test_dcgm_power_and_energy_are_the_routedmodels_gpus_in_either_label_shape(prometheus: PrometheusServer) -> None:
    spec = vllm_spec()
    source = PrometheusMetrics(prometheus.url, slo=spec.slo, metrics=spec.metrics, timeout_s=2.0, max_age_s=10.0)
    chat, other = Scope("it", "chat"), Scope("it", "other")
    assert read(source, Signal.POWER, chat) == pytest.approx(CHAT_WATTS)
    assert read(source, Signal.POWER, other) == pytest.approx(200.0)
    # The counter rises 1000 mJ per second per watt: the energy rate is the power, in watts.
    wait_until(
        lambda: read(source, Signal.ENERGY, chat) == pytest.approx(CHAT_WATTS, rel=0.05),
        timeout_s=30, what="energy rate = power",
    )  # fmt: skip
    with pytest.raises(StaleDataError):  # no pod of this RoutedModel: no GPU, never a 0 W reading
        source.read(Signal.POWER, Scope("it", "absent"), now=time.time())


def test_the_vllm_preset_reads_stock_vllm_series(prometheus: PrometheusServer) -> None:
    spec = vllm_spec()
    source = PrometheusMetrics(prometheus.url, slo=spec.slo, metrics=spec.metrics, timeout_s=2.0, max_age_s=10.0)
    chat = Scope("it", "chat")
    wait_until(lambda: read(source, Signal.REQUEST_RATE, chat) == 0.0, timeout_s=30, what="a rate over two scrapes")
    signals = collect(source, chat, now=time.time(), signals=observed_signals(spec.metrics, OBSERVED))
    assert Signal.QUALITY not in signals.values  # no shadow series in vLLM: not asked for
    assert signals.get(Signal.QUEUE_DEPTH) == Reading(0.0, signals.get(Signal.QUEUE_DEPTH).time)  # type: ignore[union-attr]
    assert isinstance(signals.get(Signal.LATENCY), Idle)  # counters stand still: a known zero load
    assert isinstance(signals.get(Signal.POWER), Reading)
    assert signals.power_source == "dcgm"
