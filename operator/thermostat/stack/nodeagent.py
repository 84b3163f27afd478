"""The node agent: the kubelet of the local stack, running runtime Pods as real processes.

It watches Pods through the API. For each Pod whose first container runs ``thermostat-runtime
serve`` it waits the documented start delay (standing in for the image pull), starts the process per
the pod template contract (:mod:`podspec`), publishes it as a Prometheus ``file_sd`` target with the
labels ``namespace``, ``pod`` and ``routedmodel``, and marks the Pod Ready once ``/readyz`` answers
200 (the runtime is not ready before its first read of the routing ConfigMap). At most
``max_replicas`` run at once: two cores are the frame, so a third Pod stays Pending, Unschedulable.

A deleted Pod is drained as a kubelet would after its preStop hook: its endpoint leaves the pool
first, in-flight requests finish, Prometheus gets two more scrapes (so the runtime's counters are
complete), then SIGTERM, the grace period, and SIGKILL if needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from thermostat.stack.endpoints import EndpointPool
from thermostat.stack.kubeapi import KubeApi, KubeApiError
from thermostat.stack.podspec import PodContractError, grace_period_s, is_runtime_pod, runtime_launch
from thermostat.stack.ports import free_port
from thermostat.stack.processes import ChildProcess, ProcessTable

log = logging.getLogger(__name__)

# Seconds a new replica waits before its process starts: the image pull of a GPU node, scaled down
# to this machine (a real pull of a multi-GB runtime image takes tens of seconds to minutes).
DEFAULT_START_DELAY_S = 10.0
MAX_LOCAL_REPLICAS = 2
READY_POLL_S = 0.5


@dataclass(frozen=True)
class Target:
    """A scrape target: the runtime's address and its scoping labels."""

    address: str
    labels: dict[str, str]


@dataclass
class LocalPod:
    """A Pod the agent runs: its identity, its port and its process once started."""

    namespace: str
    name: str
    routedmodel: str
    grace_s: float
    port: int = 0
    process: ChildProcess | None = None
    task: asyncio.Task[None] | None = None
    ready_at: float | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class NodeAgent:
    """Runs runtime Pods as processes; see the module docstring."""

    api: KubeApi
    processes: ProcessTable
    pool: EndpointPool
    kubeconfig: Path
    on_targets: Callable[[list[Target]], None]
    start_delay_s: float = DEFAULT_START_DELAY_S
    max_replicas: int = MAX_LOCAL_REPLICAS
    scrape_interval_s: float = 1.0
    extra_env: dict[str, str] = field(default_factory=dict)
    pods: dict[str, LocalPod] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    _draining: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self) -> None:
        """Follow Pods until cancelled."""
        async for event_type, pod in self.api.watch("/api/v1/pods"):
            if not is_runtime_pod(pod):
                continue
            key = f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"
            if event_type == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                self._forget(key)
            elif key not in self.pods:
                self._admit(pod)

    def running_count(self) -> int:
        return sum(1 for pod in self.pods.values() if pod.process is not None or pod.task is not None)

    def _admit(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        local = LocalPod(meta.get("namespace", "default"), meta["name"],
                         meta.get("labels", {}).get("thermostat.dev/routedmodel", ""), grace_period_s(pod))  # fmt: skip
        self.pods[local.key] = local
        local.task = asyncio.create_task(self._run_pod(local, pod))

    def _forget(self, key: str) -> None:
        local = self.pods.pop(key, None)
        if local is not None:
            drained = asyncio.create_task(self._drain(local))
            self._draining.add(drained)
            drained.add_done_callback(self._draining.discard)

    async def _run_pod(self, local: LocalPod, pod: dict[str, Any]) -> None:
        try:
            await self._wait_for_slot(local)
            self._note(f"{local.key}: pulling (start delay {self.start_delay_s:.0f}s)")
            await asyncio.sleep(self.start_delay_s)
            local.port = free_port()
            launch = runtime_launch(pod, port=local.port, kubeconfig=self.kubeconfig, extra_env=self.extra_env)
            local.process = self.processes.start(f"runtime-{local.name}", launch.argv, env=launch.env)
            self._note(f"{local.key}: started pid {local.process.pid} on port {local.port}")
            self._publish_targets()
            await self._patch_status(local, ready=False, phase="Running")
            await self._wait_ready(local)
        except PodContractError as error:
            self._note(f"{local.key}: cannot run: {error}")
            await self._patch_status(local, ready=False, phase="Failed", message=str(error))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._note(f"{local.key}: failed: {error}")
            log.exception("node agent: pod %s", local.key)

    async def _wait_for_slot(self, local: LocalPod) -> None:
        """Pending until fewer than ``max_replicas`` other pods hold a slot (two cores, DESIGN §6)."""
        announced = False
        while sum(1 for p in self.pods.values() if p is not local and p.port) >= self.max_replicas:
            if not announced:
                message = f"the local node runs at most {self.max_replicas} runtime replicas (two cores)"
                await self._patch_status(local, ready=False, phase="Pending", message=message, unschedulable=True)
                announced = True
            await asyncio.sleep(1.0)
        local.port = -1  # holds the slot while the start delay runs

    async def _wait_ready(self, local: LocalPod) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if local.process is None or not local.process.alive():
                    tail = local.process.log_tail(1500) if local.process else ""
                    self._note(f"{local.key}: the runtime exited before it was ready:\n{tail}")
                    await self._patch_status(local, ready=False, phase="Failed", message="runtime exited; see log")
                    return
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(f"{local.url}/readyz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(READY_POLL_S)
        local.ready_at = time.monotonic()
        self.pool.add(local.key, local.url)
        await self._patch_status(local, ready=True, phase="Running")
        self._note(f"{local.key}: ready")

    async def _drain(self, local: LocalPod) -> None:
        if local.task is not None and not local.task.done():
            local.task.cancel()
        endpoint = self.pool.remove(local.key)
        if local.process is None:
            return
        self._note(f"{local.key}: draining")
        if endpoint is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(endpoint.idle.wait(), timeout=local.grace_s)
        # Two scrapes after the last reply, so Prometheus holds the runtime's final counters.
        await asyncio.sleep(2 * self.scrape_interval_s + 0.5)
        status = await local.process.stop_async(grace_s=local.grace_s)
        self._publish_targets(excluding=local.key)
        self._note(f"{local.key}: stopped (exit status {status})")

    def targets(self, excluding: str | None = None) -> list[Target]:
        """Scrape targets of every started runtime process."""
        return [
            Target(f"127.0.0.1:{p.port}", {"namespace": p.namespace, "pod": p.name, "routedmodel": p.routedmodel})
            for p in self._all_started()
            if p.key != excluding
        ]

    def _all_started(self) -> list[LocalPod]:
        return [p for p in self.pods.values() if p.process is not None and p.port > 0]

    def _publish_targets(self, excluding: str | None = None) -> None:
        self.on_targets(self.targets(excluding))

    async def _patch_status(self, local: LocalPod, *, ready: bool, phase: str, message: str = "",
                            unschedulable: bool = False) -> None:  # fmt: skip
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conditions = [{"type": "Ready", "status": str(ready), "lastTransitionTime": now}]
        conditions.append({"type": "PodScheduled", "status": str(not unschedulable),
                           **({"reason": "Unschedulable", "message": message} if unschedulable else {})})  # fmt: skip
        status: dict[str, Any] = {"phase": phase, "conditions": conditions, "hostIP": "127.0.0.1"}
        if local.port > 0:
            status["podIP"] = "127.0.0.1"
        if message and not unschedulable:
            status["message"] = message
        path = f"/api/v1/namespaces/{local.namespace}/pods/{local.name}/status"
        try:
            await self.api.merge_patch(path, {"status": status})
        except KubeApiError as error:
            if error.status != 404:  # a Pod deleted meanwhile needs no status
                self._note(f"{local.key}: status patch refused: {error}")

    def _note(self, text: str) -> None:
        log.info("node agent: %s", text)
        self.events.append((time.monotonic(), text))

    async def shutdown(self) -> None:
        """Drain every pod the agent runs (the stack is ending)."""
        local_pods = list(self.pods.values())
        self.pods.clear()
        await asyncio.gather(*(self._drain(p) for p in local_pods), *list(self._draining), return_exceptions=True)
