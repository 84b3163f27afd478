"""The real runtime on a staged rollout's track (DESIGN §3 "Tracks"): it watches its routing ConfigMap
through the emulated API server and reads its labels file as the downward API writes it; a pod on
the canary track applies ``canary.routing_temperature``, a relabel or a removed key applies at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from thermostat_runtime.routing_config import ConfigMapSource, RoutingSetting, TrackFile

pytestmark = [pytest.mark.model, pytest.mark.integration, pytest.mark.slow]

apiserver_module = pytest.importorskip("thermostat_apiserver")
kubernetes = pytest.importorskip("kubernetes")

NAMESPACE, NAME = "default", "chat-routing"


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_a_canary_pod_serves_the_canary_key_and_returns_to_stable(start_server, scrape, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    api = apiserver_module.ApiServer(pod_ready_delay_s=0.2)
    await api.__aenter__()
    client = kubernetes.config.new_client_from_config(config_file=str(api.write_kubeconfig(tmp_path / "kubeconfig")))
    core = kubernetes.client.CoreV1Api(client)
    labels = tmp_path / "labels"
    labels.write_text('app.kubernetes.io/component="runtime"\n')
    setting, track = RoutingSetting(), TrackFile(labels, interval_s=0.05)
    source = ConfigMapSource(NAMESPACE, NAME, setting, api_client=client, retry_s=0.1, watch_timeout_s=60,
                             track=lambda: track.track)  # fmt: skip
    # A long watch: no re-list brings the new track's key; the track's own listener must.
    track.on_change.append(source.reapply)
    running = start_server(sources=[track, source], setting=setting)
    run = asyncio.get_running_loop().run_in_executor
    gauge: Callable[[], Any] = lambda: scrape(running.url)[("thermostat_routing_temperature", ())]  # noqa: E731
    try:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "namespace": NAMESPACE},
                "data": {"routing_temperature": "0.9", "canary.routing_temperature": "0.5"}}  # fmt: skip
        await run(None, lambda: core.create_namespaced_config_map(NAMESPACE, body))
        await _until(lambda: setting.value == 0.9, "a stable pod applies routing_temperature")
        labels.write_text('app.kubernetes.io/component="runtime"\nthermostat.dev/track="canary"\n')
        await _until(lambda: setting.value == 0.5, "relabelled canary: canary.routing_temperature at once")
        assert gauge() == 0.5
        patch = {"data": {"canary.routing_temperature": None}}  # a rollback drops the canary key
        await run(None, lambda: core.patch_namespaced_config_map(NAME, NAMESPACE, patch))
        await _until(lambda: setting.value == 0.9, "the canary key removed: back to stable")
        assert gauge() == 0.9
    finally:
        running.stop()
        await api.__aexit__(None, None, None)
