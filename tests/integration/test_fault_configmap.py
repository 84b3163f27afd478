"""Fault: the routing ConfigMap deleted by hand. A pod's watch (the runtime's own ``ConfigMapSource``
against the emulated API) keeps the last temperature and says so (``stale``, exported as
``thermostat_routing_config_stale``); the real operator creates the ConfigMap again with the
temperature in force, and the pod reads it and is no longer stale. The figures are printed
(``pytest -s``) and recorded in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_support import NAMESPACE, Cluster, EmulatedApi, OperatorProcess, wait_until

from thermostat.kube import load_api_client
from thermostat_runtime.routing_config import ConfigMapSource, RoutingSetting

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

CONFIGMAP = "chat-routing"


@pytest.fixture
def operator(operator_kubeconfig: Path, tmp_path: Path) -> Iterator[OperatorProcess]:
    # No Prometheus: the knobs rest (held), which is what a deleted ConfigMap must not disturb.
    process = OperatorProcess(operator_kubeconfig, "http://127.0.0.1:9", tmp_path / "operator.log")
    yield process
    process.stop()
    print(process.log_tail())


class Watching:
    """What a runtime pod's ConfigMap watch holds, in a daemon thread of its own."""

    def __init__(self, kubeconfig: Path) -> None:
        self.setting = RoutingSetting()
        self.stale_seen: list[bool] = []
        self.setting.on_stale.append(self.stale_seen.append)
        self.source = ConfigMapSource(
            NAMESPACE, CONFIGMAP, self.setting, api_client=load_api_client(kubeconfig), retry_s=0.2, watch_timeout_s=5
        )
        asyncio.run(self.source.start())  # starts the watch thread and returns

    def stop(self) -> None:
        asyncio.run(self.source.stop())


def spec() -> dict[str, Any]:
    return {
        "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}},
        "slo": {"targetSeconds": 10, "windowSeconds": 15},
        "replicas": {"min": 1, "max": 3},
        "behavior": {"periodSeconds": 1},
        "quality": {"minRoutingTemperature": 0.3, "maxRoutingTemperature": 0.7},
    }


def test_a_deleted_routing_configmap_is_recreated_and_the_pods_keep_their_temperature(
    cluster: Cluster, operator: OperatorProcess, emulated_api: EmulatedApi
) -> None:
    cluster.create_routedmodel(spec())
    wait_until(lambda: cluster.temperature() is not None, timeout_s=60, what="the routing ConfigMap created")
    pod = Watching(emulated_api.kubeconfig)
    try:
        wait_until(lambda: pod.setting.value is not None and not pod.setting.stale, timeout_s=20, what="pod read it")
        before = pod.setting.value
        cluster.kube.core.delete_namespaced_config_map(CONFIGMAP, NAMESPACE, _preload_content=False)
        deleted = time.monotonic()
        wait_until(lambda: pod.setting.stale, timeout_s=10, what="the pod says its temperature is stale")
        said_stale = time.monotonic() - deleted
        assert pod.setting.value == before  # kept, not reset to exact or to a default
        wait_until(lambda: cluster.temperature() is not None, timeout_s=15, what="the operator re-created it")
        recreated = time.monotonic() - deleted
        wait_until(lambda: not pod.setting.stale, timeout_s=15, what="the pod reads the re-created ConfigMap")
        fresh = time.monotonic() - deleted
    finally:
        pod.stop()
    assert cluster.temperature() is not None
    assert float(cluster.temperature() or 0) == pytest.approx(before)
    assert pod.setting.value == before
    assert cluster.events("RoutingConfigMapRecreated")
    print(
        f"\nFAULT configmap-deleted: temperature_before={before} after={pod.setting.value} "
        f"stale_said_s={said_stale:.1f} recreated_s={recreated:.1f} pod_fresh_s={fresh:.1f} "
        f"actuations={len(cluster.events('RoutingTemperatureChanged')) + len(cluster.events('ReplicasChanged'))}"
    )
