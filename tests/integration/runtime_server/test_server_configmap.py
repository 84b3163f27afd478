"""The routing temperature from ONE ConfigMap watched through the project's emulated API server
(``thermostat_apiserver``): not Ready before the first read, changes applied without a restart, other
ConfigMaps ignored, the last value kept and ``thermostat_routing_config_stale`` 1 while the API is down,
and the watch reconnects when it is back."""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from thermostat_runtime.routing_config import ConfigMapSource, RoutingSetting

pytestmark = [pytest.mark.model, pytest.mark.integration, pytest.mark.slow]

apiserver_module = pytest.importorskip("thermostat_apiserver")
kubernetes = pytest.importorskip("kubernetes")

NAMESPACE, NAME = "default", "chat-routing"


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def _configmap(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {"routing_temperature": value}}  # fmt: skip


async def test_the_configmap_watch_drives_the_routing_temperature(start_server, scrape, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    api = apiserver_module.ApiServer(pod_ready_delay_s=0.2)
    await api.__aenter__()
    port = int(api.url.rsplit(":", 1)[1])
    client = kubernetes.config.new_client_from_config(config_file=str(api.write_kubeconfig(tmp_path / "kubeconfig")))
    core = kubernetes.client.CoreV1Api(client)
    setting = RoutingSetting()
    source = ConfigMapSource(NAMESPACE, NAME, setting, api_client=client, retry_s=0.1, watch_timeout_s=1)
    running = start_server(sources=[source], setting=setting)
    run = asyncio.get_running_loop().run_in_executor
    try:
        await asyncio.sleep(0.5)
        assert _status(running.url + "/readyz") == 503  # nothing read yet
        await run(None, lambda: core.create_namespaced_config_map(NAMESPACE, _configmap("other-routing", "0.2")))
        await run(None, lambda: core.create_namespaced_config_map(NAMESPACE, _configmap(NAME, "0.5")))
        await _until(lambda: _status(running.url + "/readyz") == 200, "Ready after the first read")
        assert setting.value == 0.5
        body = {"data": {"routing_temperature": "0.3"}}
        await run(None, lambda: core.patch_namespaced_config_map(NAME, NAMESPACE, body))
        await _until(lambda: setting.value == 0.3, "a ConfigMap change applied")
        assert scrape(running.url)[("thermostat_routing_temperature", ())] == 0.3
        assert scrape(running.url)[("thermostat_routing_config_stale", ())] == 0

        await api.__aexit__(None, None, None)  # the API goes away: the watch drops
        await _until(lambda: scrape(running.url)[("thermostat_routing_config_stale", ())] == 1, "stale raised")
        assert setting.value == 0.3
        assert _status(running.url + "/readyz") == 200

        # Restarted on the same port with the same admin credentials, as a cluster's API server restarts.
        api = apiserver_module.ApiServer(port=port, pod_ready_delay_s=0.2, admin_token=api.tokens.admin_token)
        await api.__aenter__()
        await run(None, lambda: core.create_namespaced_config_map(NAMESPACE, _configmap(NAME, "0.7")))
        await _until(lambda: setting.value == 0.7, "the watch reconnected")
        assert scrape(running.url)[("thermostat_routing_config_stale", ())] == 0
    finally:
        running.stop()
        await api.__aexit__(None, None, None)


async def test_the_slo_target_is_read_once_at_start_and_an_edit_waits_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from thermostat_runtime.serve import initial_slo_target

    caplog.set_level(logging.INFO, logger="thermostat_runtime.routing_config")
    async with apiserver_module.ApiServer(pod_ready_delay_s=0.2) as api:
        client = kubernetes.config.new_client_from_config(config_file=str(api.write_kubeconfig(tmp_path / "kc")))
        core = kubernetes.client.CoreV1Api(client)
        run = asyncio.get_running_loop().run_in_executor
        body = _configmap(NAME, "0.6")
        body["data"]["slo_target_seconds"] = "4.2"
        await run(None, lambda: core.create_namespaced_config_map(NAMESPACE, body))
        setting = RoutingSetting()
        source = ConfigMapSource(NAMESPACE, NAME, setting, api_client=client, retry_s=0.1, watch_timeout_s=1)
        assert await run(None, lambda: initial_slo_target([source])) == 4.2
        assert setting.value == 0.6  # the first read also brings the temperature
        patch = {"data": {"slo_target_seconds": "3.0", "routing_temperature": "0.5"}}
        await run(None, lambda: core.patch_namespaced_config_map(NAME, NAMESPACE, patch))
        await source.start()
        try:
            await _until(lambda: setting.value == 0.5, "the watch applies the temperature")
            assert "takes effect at the next pod start" in caplog.text
        finally:
            await source.stop()
        other = ConfigMapSource(NAMESPACE, "absent-routing", RoutingSetting(), api_client=client)
        assert await run(None, lambda: initial_slo_target([other])) is None
