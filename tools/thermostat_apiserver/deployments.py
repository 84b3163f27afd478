"""A minimal Deployment controller: Pods from the template, surplus removed, status written.

It does what the Deployment and ReplicaSet controllers together do for our use, without
ReplicaSet objects: it owns the Pods directly (``ownerReferences`` to the Deployment, so deletion
cascades). A template change rolls Pods over: new ones first, old ones removed as new ones turn
Ready. On scale-down it removes not-Ready Pods first, then those with the lowest
``controller.kubernetes.io/pod-deletion-cost``, then the newest, as the ReplicaSet controller does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import secrets
from typing import Any

from thermostat_apiserver import errors
from thermostat_apiserver.pods import PODS, is_ready
from thermostat_apiserver.resources import ResourceType
from thermostat_apiserver.selectors import matches_label_selector_object
from thermostat_apiserver.store import Event, Obj, Store, timestamp

DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment", subresources=("status", "scale"))
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
HASH_LABEL = "pod-template-hash"
EVENTS = ResourceType("", "v1", "events", "Event")


def template_hash(deployment: Obj) -> str:
    template = deployment.get("spec", {}).get("template", {})
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _deletion_cost(pod: Obj) -> int:
    try:
        return int((pod["metadata"].get("annotations") or {}).get(DELETION_COST, "0"))
    except ValueError:
        return 0


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods in the order a scale-down removes them (first = removed first)."""
    return sorted(
        pods,
        key=lambda p: (
            is_ready(p),
            _deletion_cost(p),
            _negated(p["metadata"]["creationTimestamp"]),
            p["metadata"]["name"],
        ),
    )


def _negated(stamp: str) -> tuple[int, ...]:
    return tuple(-ord(char) for char in stamp)  # newest first: later timestamps sort earlier


def new_pod(deployment: Obj, pod_hash: str) -> Obj:
    meta = deployment["metadata"]
    template = copy.deepcopy(deployment.get("spec", {}).get("template", {}))
    labels = {**(template.get("metadata", {}).get("labels") or {}), HASH_LABEL: pod_hash}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-{pod_hash}-{secrets.token_hex(3)[:5]}",
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": template.get("metadata", {}).get("annotations") or {},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {**template.get("spec", {}), "nodeName": "emulated-node"},
    }


class DeploymentController:
    """Reconciles every Deployment whenever it or one of its Pods changes."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def on_event(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.key == DEPLOYMENTS.key:
            self._dirty.add((meta["namespace"], meta["name"]))
        elif event.key == PODS.key:
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "Deployment":
                    self._dirty.add((meta["namespace"], ref["name"]))
        else:
            return
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for namespace, name in sorted(dirty):
                with contextlib.suppress(errors.ApiError):  # deleted or changed meanwhile: the next event retries
                    self.reconcile(namespace, name)

    def reconcile(self, namespace: str, name: str) -> None:
        deployment = self._store.find(DEPLOYMENTS, namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        uid = deployment["metadata"]["uid"]
        pods = [
            p
            for p in self._store.objects(PODS, namespace)
            if any(ref.get("uid") == uid for ref in p["metadata"].get("ownerReferences") or [])
            and not p["metadata"].get("deletionTimestamp")
        ]
        pod_hash = template_hash(deployment)
        current = [p for p in pods if p["metadata"].get("labels", {}).get(HASH_LABEL) == pod_hash]
        old = [p for p in pods if p not in current]
        desired = int(deployment.get("spec", {}).get("replicas", 1))
        added = [
            self._store.create(PODS, namespace, new_pod(deployment, pod_hash)) for _ in range(desired - len(current))
        ]
        current += added
        surplus = deletion_order(current)[: max(0, len(current) - desired)]
        ready_new = sum(1 for p in current if is_ready(p) and p not in surplus)
        keep_old = max(0, desired - ready_new)
        surplus += deletion_order(old)[: max(0, len(old) - keep_old)]
        for pod in surplus:
            self._store.delete(PODS, namespace, pod["metadata"]["name"])
        if added or surplus:
            self._post_event(
                deployment,
                f"Pods: {len(added)} created, {len(surplus)} deleted ({desired} desired, template {pod_hash})",
            )
        remaining = [p for p in old + current if p not in surplus]
        self._write_status(deployment, remaining, [p for p in current if p not in surplus])

    def _post_event(self, deployment: Obj, message: str) -> None:
        """An Event on the Deployment, as the controller posts one, for ``kubectl describe``."""
        meta = deployment["metadata"]
        now = timestamp()
        self._store.create(
            EVENTS,
            meta["namespace"],
            {
                "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}"},
                "involvedObject": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta["uid"],
                },
                "reason": "ScalingPods",
                "message": message,
                "type": "Normal",
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": "deployment-controller"},
            },
        )

    def _write_status(self, deployment: Obj, pods: list[Obj], updated: list[Obj]) -> None:
        ready = sum(1 for p in pods if is_ready(p))
        desired = int(deployment.get("spec", {}).get("replicas", 1))
        previous = deployment.get("status") or {}
        available = ready >= desired
        condition = _available_condition(previous, available)
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, desired - ready),
            "conditions": [condition],
        }
        selector = deployment.get("spec", {}).get("selector") or {}
        if any(not matches_label_selector_object(selector, p["metadata"].get("labels") or {}) for p in pods):
            status["conditions"].append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "SelectorMismatch",
                    "message": "the Pod template's labels do not match spec.selector",
                }
            )
        if status != previous:
            deployment["status"] = status
            self._store.update(
                DEPLOYMENTS,
                deployment["metadata"]["namespace"],
                deployment["metadata"]["name"],
                deployment,
                subresource="status",
            )


def _available_condition(previous: Obj, available: bool) -> dict[str, Any]:
    old = next((c for c in previous.get("conditions") or [] if c.get("type") == "Available"), None)
    status = "True" if available else "False"
    changed = old is None or old.get("status") != status
    now = timestamp()
    return {
        "type": "Available",
        "status": status,
        "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
        "message": "Deployment has minimum availability."
        if available
        else "Deployment does not have minimum availability.",
        "lastUpdateTime": now if changed or old is None else old.get("lastUpdateTime", now),
        "lastTransitionTime": now if changed or old is None else old.get("lastTransitionTime", now),
    }
