"""What the node would do for each Pod: run it, and report it Ready — through a replaceable hook.

The server starts :meth:`PodRunner.run` for every Pod it stores and cancels it when the Pod is
deleted (or marked for deletion: a runner may ``hold()`` its Pod so that it stays, Terminating,
until the runner has drained it and lets go). The default runner, :class:`DelayedReady`, marks the
Pod Ready after a delay; the local stack passes a runner that starts a real process and calls
``pod.set_ready()`` once it serves. The handle's ``pod`` follows the stored Pod's labels and
annotations as they are edited (a kubelet's view of its Pods), so a runner can project them into a
downward API volume; its spec stays the one the Pod was created with (a Pod's spec is immutable).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Protocol

from thermostat_apiserver.resources import ResourceType
from thermostat_apiserver.store import Obj, Store, timestamp

PODS = ResourceType("", "v1", "pods", "Pod", subresources=("status",))
# Held by a runner while its Pod drains: a deleted Pod stays, Terminating, until the runner is done,
# as the kubelet keeps it through the grace period (Prometheus goes on scraping it meanwhile).
NODE_FINALIZER = "thermostat.dev/node-agent"


class PodHandle:
    """One running Pod as a runner sees it: its manifest, and a way to report readiness."""

    def __init__(self, store: Store, pod: Obj) -> None:
        self._store = store
        self.pod: Obj = copy.deepcopy(pod)

    def follow(self, stored: Obj) -> None:
        """Take the stored Pod's labels and annotations (the API's edits reach the node)."""
        for key in ("labels", "annotations"):
            value = stored["metadata"].get(key)
            if value is None:
                self.pod["metadata"].pop(key, None)
            else:
                self.pod["metadata"][key] = copy.deepcopy(value)

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    def hold(self, held: bool = True) -> None:
        """Keep the Pod object through its termination (finalizer), or let it go once drained."""
        current = self._store.find(PODS, self.namespace, self.name)
        if current is None:
            return
        finalizers = [f for f in current["metadata"].get("finalizers") or [] if f != NODE_FINALIZER]
        current["metadata"]["finalizers"] = [*finalizers, NODE_FINALIZER] if held else finalizers
        self._store.update(PODS, self.namespace, self.name, current)

    async def set_ready(self, ready: bool = True, *, pod_ip: str | None = None, message: str = "") -> None:
        """Write the Pod's status as the kubelet would: Running, its containers and the Ready condition."""
        current = self._store.find(PODS, self.namespace, self.name)
        if current is None or current["metadata"].get("deletionTimestamp"):
            return  # deleted meanwhile, or terminating: no longer the runner's to report
        current["status"] = pod_status(current, ready=ready, pod_ip=pod_ip, message=message)
        self._store.update(PODS, self.namespace, self.name, current, subresource="status")


class PodRunner(Protocol):
    """The hook: run one Pod until cancelled (the Pod was deleted); call ``pod.set_ready()`` when it serves."""

    async def run(self, pod: PodHandle) -> None: ...


class DelayedReady:
    """The default runner: a Pod is Ready ``delay_s`` seconds after it is created, and stays so."""

    def __init__(self, delay_s: float = 1.0) -> None:
        self.delay_s = delay_s

    async def run(self, pod: PodHandle) -> None:
        await asyncio.sleep(self.delay_s)
        await pod.set_ready(True)
        await asyncio.Event().wait()  # until the Pod is deleted


def _condition(kind: str, status: bool, now: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if status else "False", "lastProbeTime": None, "lastTransitionTime": now}


def pod_status(pod: Obj, *, ready: bool, pod_ip: str | None = None, message: str = "") -> Obj:
    """A kubelet-like Pod status: phase, conditions, one status per container."""
    now = timestamp()
    previous = pod.get("status") or {}
    started = previous.get("startTime", now)
    containers = pod.get("spec", {}).get("containers", [])
    running = ready or previous.get("phase") == "Running"
    statuses = [
        {
            "name": c.get("name", ""),
            "image": c.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": running,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}}
            if running
            else {"waiting": {"reason": "ContainerCreating", **({"message": message} if message else {})}},
        }
        for c in containers
    ]
    status: Obj = {
        "phase": "Running" if running else "Pending",
        "startTime": started,
        "hostIP": "127.0.0.1",
        "conditions": [
            _condition("PodScheduled", True, now),
            _condition("Initialized", True, now),
            _condition("ContainersReady", ready, now),
            _condition("Ready", ready, now),
        ],
        "containerStatuses": statuses,
    }
    ip = pod_ip or previous.get("podIP")
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return status


def is_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class PodSupervisor:
    """Runs a runner task per stored Pod: started when the Pod appears, cancelled when it goes."""

    def __init__(self, store: Store, runner: PodRunner) -> None:
        self._store = store
        self._runner = runner
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._handles: dict[str, PodHandle] = {}

    def on_event(self, kind: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if kind == "ADDED" and uid not in self._tasks:
            if not pod.get("status", {}).get("phase"):
                handle = PodHandle(self._store, pod)
                self._handles[uid] = handle
                self._tasks[uid] = asyncio.get_running_loop().create_task(self._run(handle))
        elif uid in self._tasks and (kind == "DELETED" or pod["metadata"].get("deletionTimestamp")):
            self._tasks.pop(uid).cancel()  # deleted, or terminating while a runner holds it
            self._handles.pop(uid, None)
        elif kind == "MODIFIED" and uid in self._handles:
            self._handles[uid].follow(pod)  # a relabel reaches the runner (the downward API's labels file)

    async def _run(self, handle: PodHandle) -> None:
        await handle.set_ready(False)
        await self._runner.run(handle)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        self._handles.clear()
