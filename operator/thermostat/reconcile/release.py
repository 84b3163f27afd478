"""Letting go of a user's objects when their RoutedModel is deleted (the finalizer's work).

What the operator created carries the RoutedModel's ownerReference and goes with it (the garbage
collector); what it only drove (the targetRef Deployment, a user's routing ConfigMap) gets back
the keys it had before and loses the operator's marks. Nothing else is written: the Deployment's
replicas stay where they are, since removing a RoutedModel must not remove capacity under load.
"""

from __future__ import annotations

from typing import Any

from thermostat.reconcile.actions import Actions, PatchObject
from thermostat.reconcile.apply import apply
from thermostat.reconcile.world import Context, Subject
from thermostat.render.ownership import release_patch


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


def release(context: Context, body: dict[str, Any]) -> None:
    """Read the user's objects a deleted RoutedModel drove and give them back; a refusal raises (Kopf retries)."""
    subject = Subject.from_body(body)
    target = (body.get("spec") or {}).get("targetRef") or {}
    names = {"Deployment": target.get("name"), "ConfigMap": target.get("routingConfigMap")}
    live = {kind: context.kube.read(kind, subject.namespace, name) for kind, name in names.items() if name}
    outcome = apply(context.kube, subject.ref, Actions(writes=tuple(plan_release(subject.name, live))))
    if outcome.error:
        raise RuntimeError(outcome.error)
