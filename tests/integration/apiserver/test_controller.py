"""The Deployment controller and the Pod-runner hook: roll-outs, readiness from a runner, cascades."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from thermostat_apiserver import ApiServer, PodHandle
from thermostat_apiserver.pods import is_ready

pytestmark = [pytest.mark.integration]


def _deployment(replicas: int = 2, image: str = "runtime:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "chat", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "chat"}},
            "template": {
                "metadata": {"labels": {"app": "chat"}},
                "spec": {"containers": [{"name": "runtime", "image": image}]},
            },
        },
    }


def _ready_replicas(api: ApiServer) -> int:
    deployment = api.store.get(api.registry.require("apps", "v1", "deployments"), "default", "chat")
    return int(deployment.get("status", {}).get("readyReplicas", 0))


async def _eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not come true")
        await asyncio.sleep(0.02)
    return result


class GatedRunner:
    """A runner the test drives: a Pod turns Ready only when the test opens its gate."""

    def __init__(self) -> None:
        self.running: dict[str, PodHandle] = {}
        self.stopped: list[str] = []
        self.gate = asyncio.Event()

    async def run(self, pod: PodHandle) -> None:
        self.running[pod.name] = pod
        try:
            await self.gate.wait()
            await pod.set_ready(True, pod_ip="127.0.0.1")
            await asyncio.Event().wait()
        finally:
            self.stopped.append(pod.name)


async def test_pods_turn_ready_only_when_the_runner_says_so() -> None:
    runner = GatedRunner()
    async with ApiServer(pod_runner=runner) as api:
        deployments, pods = api.registry.require("apps", "v1", "deployments"), api.registry.require("", "v1", "pods")
        api.store.create(deployments, "default", _deployment(replicas=2))
        await _eventually(lambda: len(runner.running) == 2)
        status = api.store.get(deployments, "default", "chat").get("status", {})
        assert status.get("readyReplicas", 0) == 0
        runner.gate.set()
        await _eventually(lambda: _ready_replicas(api) == 2)
        ready = api.store.objects(pods, "default")
        assert all(is_ready(p) and p["status"]["podIP"] == "127.0.0.1" for p in ready)
        api.store.delete(deployments, "default", "chat")
        await _eventually(lambda: sorted(runner.stopped) == sorted(runner.running))
        assert api.store.objects(pods, "default") == []


async def test_a_relabelled_pod_reaches_its_runner_as_a_kubelet_sees_it() -> None:
    runner = GatedRunner()
    runner.gate.set()
    async with ApiServer(pod_runner=runner) as api:
        deployments, pods = api.registry.require("apps", "v1", "deployments"), api.registry.require("", "v1", "pods")
        api.store.create(deployments, "default", _deployment(replicas=1))
        await _eventually(lambda: _ready_replicas(api) == 1)
        ((name, handle),) = runner.running.items()
        stored = api.store.get(pods, "default", name)
        stored["metadata"]["labels"]["thermostat.dev/track"] = "canary"  # what the operator patches
        api.store.update(pods, "default", name, stored)
        assert handle.pod["metadata"]["labels"]["thermostat.dev/track"] == "canary"
        stored = api.store.get(pods, "default", name)
        del stored["metadata"]["labels"]["thermostat.dev/track"]
        api.store.update(pods, "default", name, stored)
        assert "thermostat.dev/track" not in handle.pod["metadata"]["labels"]
        assert handle.pod["metadata"]["labels"]["app"] == "chat"


async def test_a_template_change_rolls_pods_over_new_first(api: ApiServer) -> None:
    deployments, pods = api.registry.require("apps", "v1", "deployments"), api.registry.require("", "v1", "pods")
    api.store.create(deployments, "default", _deployment(replicas=2, image="runtime:1"))
    await _eventually(lambda: _ready_replicas(api) == 2)
    changed = api.store.get(deployments, "default", "chat")
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "runtime:2"
    api.store.update(deployments, "default", "chat", changed)

    def images() -> list[str]:
        return sorted(p["spec"]["containers"][0]["image"] for p in api.store.objects(pods, "default"))

    seen: list[list[str]] = []
    while (current := images()) != ["runtime:2", "runtime:2"] or not all(
        is_ready(p) for p in api.store.objects(pods, "default")
    ):
        seen.append(current)
        await asyncio.sleep(0.02)
    assert all(image.count("runtime:1") <= 2 for image in seen)
    assert any("runtime:1" in s and "runtime:2" in s for s in seen)  # new Pods came up before old ones went
    final = api.store.get(deployments, "default", "chat")
    assert (final["status"]["observedGeneration"], final["metadata"]["generation"]) == (2, 2)


async def test_deleting_a_namespace_deletes_what_is_in_it(api: ApiServer) -> None:
    namespaces, cms = api.registry.require("", "v1", "namespaces"), api.registry.require("", "v1", "configmaps")
    api.store.create(namespaces, None, {"metadata": {"name": "team"}})
    api.store.create(cms, "team", {"metadata": {"name": "a"}})
    api.store.delete(namespaces, "", "team")
    assert api.store.objects(cms, "team") == []


async def test_orphan_propagation_keeps_dependents_without_the_owner_reference(api: ApiServer) -> None:
    cms = api.registry.require("", "v1", "configmaps")
    owner = api.store.create(cms, "default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    api.store.create(cms, "default", {"metadata": {"name": "kept", "ownerReferences": [ref]}})
    api.store.create(cms, "default", {"metadata": {"name": "cascaded", "ownerReferences": [ref]}})
    api.store.delete(cms, "default", "cascaded", propagation="Background")  # unrelated: just one object
    api.store.delete(cms, "default", "owner", propagation="Orphan")
    kept = api.store.get(cms, "default", "kept")
    assert kept["metadata"]["ownerReferences"] == []
