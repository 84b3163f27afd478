"""A tiny Kopf operator against the emulated API: handlers, timers, status patches, a retried 409."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kmock
import kopf
import pytest
import yaml

from thermostat_apiserver import ApiServer

REPO = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.integration]


def _example(name: str = "chat") -> dict[str, Any]:
    obj = yaml.safe_load((REPO / "examples" / "chat-p95-watts.yaml").read_text())
    obj["metadata"] = {"name": name, "namespace": "default"}
    return obj


async def _eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll until ``check`` returns something truthy (the timeout only bounds a failing test)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not come true")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_operator(api: ApiServer, registry: kopf.OperatorRegistry) -> AsyncIterator[None]:
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=api.url, default_namespace="default")

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.watching.server_timeout = 10
        settings.persistence.finalizer = "thermostat.dev/test-finalizer"

    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(registry=registry, standalone=True, namespaces=["default"], stop_flag=stop, ready_flag=ready)
    )
    await asyncio.wait_for(ready.wait(), timeout=20)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


def _stored(api: ApiServer, name: str) -> dict[str, Any] | None:
    rt = api.registry.require("thermostat.dev", "v1alpha1", "routedmodels")
    return api.store.find(rt, "default", name)


async def test_handlers_timers_and_status_patches_work(api: ApiServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    registry = kopf.OperatorRegistry()
    created: list[str] = []

    @kopf.on.create("thermostat.dev", "v1alpha1", "routedmodels", registry=registry)
    def routedmodel_create(name: str, patch: kopf.Patch, **_: Any) -> None:
        created.append(name)
        patch.status["observedGeneration"] = 1

    @kopf.timer("thermostat.dev", "v1alpha1", "routedmodels", interval=0.2, registry=registry)
    def routedmodel_tick(patch: kopf.Patch, status: Any, **_: Any) -> None:
        display = dict(status.get("display") or {})
        display["latency"] = str(int(display.get("latency") or "0") + 1)
        patch.status["display"] = display

    async with running_operator(api, registry):
        rt = api.registry.require("thermostat.dev", "v1alpha1", "routedmodels")
        api.store.create(rt, "default", _example())
        await _eventually(lambda: created == ["chat"])
        obj = await _eventually(
            lambda: (
                (o := _stored(api, "chat"))
                and int(o.get("status", {}).get("display", {}).get("latency", "0")) >= 3
                and o
            )
        )
    assert obj["status"]["observedGeneration"] == 1
    assert obj["metadata"]["generation"] == 1  # status patches never bump the generation
    assert "thermostat.dev/test-finalizer" in obj["metadata"]["finalizers"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "Kopf logged errors"


async def test_a_conflict_is_retried_by_the_handler(api: ApiServer) -> None:
    registry = kopf.OperatorRegistry()
    attempts: list[int] = []
    configmaps = api.registry.require("", "v1", "configmaps")
    api.store.create(configmaps, "default", {"metadata": {"name": "chat-routing"}, "data": {"t": "1.0"}})
    # The first write of the ConfigMap is answered 409, as when someone else wrote it first.
    api.kmock["put", kmock.resource("", "v1", "configmaps")][:1] << 409

    @kopf.on.create("thermostat.dev", "v1alpha1", "routedmodels", registry=registry, backoff=0.1)
    def routedmodel_create(**_: Any) -> None:
        import kubernetes

        attempts.append(1)
        client = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(_client_config(api)))
        cm = client.read_namespaced_config_map("chat-routing", "default")
        cm.data["t"] = "0.6"
        client.replace_namespaced_config_map("chat-routing", "default", cm)

    async with running_operator(api, registry):
        rt = api.registry.require("thermostat.dev", "v1alpha1", "routedmodels")
        api.store.create(rt, "default", _example())
        await _eventually(lambda: api.store.get(configmaps, "default", "chat-routing")["data"]["t"] == "0.6")
    assert len(attempts) == 2  # the 409 failed the first attempt; Kopf retried it


def _client_config(api: ApiServer) -> Any:
    import kubernetes

    config = kubernetes.client.Configuration()
    config.host = api.url
    return copy.copy(config)
