"""The only writes of a run: the planned writes and Events, and the one status patch at the end.

A write the API server refuses stops the writes after it and becomes the run's ``ApplyFailed``
message, in the API's own words; the writes done so far (and their Events) stand.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from thermostat.api.status import RoutedModelStatus
from thermostat.kube import ApiException, ForeignObjectError, Kube, ObjectRef, mark_for_removal, set_track
from thermostat.reconcile.actions import (
    Actions,
    ClearCommand,
    DeleteDeployment,
    Outcome,
    PatchConfigMap,
    PatchObject,
    Scale,
    SetTrack,
    Write,
)
from thermostat.reconcile.events import Event, objects_applied
from thermostat.status import status_patch
from thermostat.telemetry import ACTUATIONS

logger = logging.getLogger(__name__)


def api_message(error: ApiException) -> str:
    """The API server's own explanation (its Status message), else the HTTP status and reason."""
    try:
        body: Any = json.loads(error.body) if error.body else {}
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message) if message else f"{error.status} {error.reason}"


def _describe(write: Write, namespace: str) -> str:
    if isinstance(write, PatchConfigMap):
        return f"patching ConfigMap {namespace}/{write.name}"
    if isinstance(write, Scale):
        return f"scaling Deployment {namespace}/{write.deployment} to {write.replicas}"
    if isinstance(write, PatchObject):
        return f"marking {write.kind} {namespace}/{write.name} as {write.what}"
    if isinstance(write, SetTrack):
        return f"labelling pods {', '.join(write.pods)} track {write.track}"
    if isinstance(write, ClearCommand):
        return f"removing the annotation {write.annotation}"
    if isinstance(write, DeleteDeployment):
        return f"deleting Deployment {namespace}/{write.name}"
    meta = write.manifest["metadata"]
    return f"applying {write.manifest['kind']} {namespace}/{meta['name']}"


def _write(kube: Kube, about: ObjectRef, write: Write) -> str | None:
    """Perform one write; returns what changed for an owned object."""
    namespace = about.namespace
    if isinstance(write, SetTrack):
        set_track(kube, namespace, list(write.pods), write.track)
        return None
    if isinstance(write, ClearCommand):
        kube.remove_routedmodel_annotation(namespace, about.name, write.annotation)
        return None
    if isinstance(write, PatchConfigMap):
        kube.patch("ConfigMap", namespace, write.name, {"data": write.data})
        return None
    if isinstance(write, DeleteDeployment):
        result = kube.delete_owned_deployment(namespace, write.name, write.claim)
        if result == "deleted":
            post(kube, about, write.event)
        return None if result == "absent" else f"deleted Deployment/{write.name}"
    if isinstance(write, Scale):
        mark_for_removal(kube, namespace, list(write.mark))
        kube.scale_deployment(namespace, write.deployment, write.replicas)
        return None
    if isinstance(write, PatchObject):
        kube.patch(write.kind, namespace, write.name, write.patch)
        return f"{write.what} {write.kind}/{write.name}"
    result = kube.apply(write.manifest)
    meta = write.manifest["metadata"]
    return None if result == "unchanged" else f"{result} {write.manifest['kind']}/{meta['name']}"


def apply(kube: Kube, about: ObjectRef, actions: Actions) -> Outcome:
    """Post the planned Events, then perform the writes in order, each followed by its Event."""
    for event in actions.events:
        post(kube, about, event)
    done: list[Write] = []
    changed: list[str] = []
    error = None
    for write in actions.writes:
        try:
            change = _write(kube, about, write)
        except (ApiException, ForeignObjectError) as refusal:
            reason = api_message(refusal) if isinstance(refusal, ApiException) else str(refusal)
            error = f"{_describe(write, about.namespace)} was refused: {reason}"
            logger.warning("%s/%s: %s", about.namespace, about.name, error)
            break
        done.append(write)
        if change:
            changed.append(change)
        if isinstance(write, PatchConfigMap | Scale):
            ACTUATIONS.labels(about.namespace, about.name, write.knob).inc()
            post(kube, about, write.event)
    if changed:
        logger.info("applied %s/%s: %s", about.namespace, about.name, ", ".join(changed))
        post(kube, about, objects_applied(changed))
    return Outcome(done=tuple(done), error=error, changed=tuple(changed))


def post(kube: Kube, about: ObjectRef, event: Event) -> None:
    kube.post_event(about, reason=event.reason, message=event.message, warning=event.warning)


def write_status(kube: Kube, about: ObjectRef, status: RoutedModelStatus, event: Event | None) -> None:
    """The run's one status patch, and the Warning when Ready was lost."""
    kube.patch_routedmodel_status(about.namespace, about.name, status_patch(status))
    if event is not None:
        post(kube, about, event)
