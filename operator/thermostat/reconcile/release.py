"""Letting go of a user's objects when their RoutedModel is deleted (the finalizer's work).

What the operator created carries the RoutedModel's ownerReference and goes with it (the garbage
collector); what it only drove (the targetRef Deployment, a user's routing ConfigMap) gets back
the keys it had before and loses the operator's marks. Nothing else is written: the Deployment's
replicas stay where they are, since removing a RoutedModel must not remove capacity under load.
"""

from __future__ import annotations

import logging
from typing import Any

from thermostat.reconcile.actions import PatchObject
from thermostat.reconcile.world import Context
from thermostat.render.ownership import release_patch

logger = logging.getLogger(__name__)


def drives_users_objects(spec: Any) -> bool:
    """Whether a RoutedModel (its raw spec) drives objects it did not create: only these need a finalizer."""
    return isinstance(spec, dict) and bool(spec.get("targetRef"))


def plan_release(name: str, live: dict[str, dict[str, Any] | None]) -> list[PatchObject]:
    """The patches giving each live object (by kind) back; none for one this RoutedModel does not drive."""
    writes = []
    for kind, obj in live.items():
        patch = release_patch(obj, name)
        if obj is not None and patch is not None:
            writes.append(PatchObject(kind, obj["metadata"]["name"], patch, "released"))
    return writes


def release(context: Context, body: dict[str, Any]) -> list[str]:
    """Read the user's objects a deleted RoutedModel drove and give them back; returns what was released."""
    meta, spec = body["metadata"], body.get("spec") or {}
    namespace, target = meta["namespace"], spec.get("targetRef") or {}
    names = {"Deployment": target.get("name"), "ConfigMap": target.get("routingConfigMap")}
    live = {kind: context.kube.read(kind, namespace, name) for kind, name in names.items() if name}
    released = []
    for write in plan_release(meta["name"], live):
        context.kube.patch(write.kind, namespace, write.name, write.patch)
        released.append(f"{write.kind}/{write.name}")
    if released:
        logger.info("released %s/%s: %s", namespace, meta["name"], ", ".join(released))
    return released
