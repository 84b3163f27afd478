"""Other controllers that may set the same Deployment's replicas, and pods to remove first."""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiException

from thermostat.kube.client import MERGE_PATCH, Kube
from thermostat.kube.permissions import Permission, requires

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def _items(call: Any) -> list[dict[str, Any]]:
    """A list call's items; an API the cluster does not serve (404) lists nothing."""
    try:
        response = call()
    except ApiException as error:
        if error.status in (404, 405):
            return []
        raise
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


@requires(
    Permission("autoscaling", "horizontalpodautoscalers", ("list",), "finds HPAs targeting the Deployment"),
    Permission("keda.sh", "scaledobjects", ("list",), "finds KEDA ScaledObjects targeting the Deployment"),
)
def other_scalers(kube: Kube, namespace: str, deployment: str) -> list[str]:
    """HPAs and KEDA ScaledObjects in the namespace that target the Deployment, as ``Kind/name``."""
    found = []
    hpas = _items(lambda: kube.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace, _preload_content=False))
    for hpa in hpas:
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") == "Deployment" and target.get("name") == deployment:
            found.append(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}")
    scaled_objects = _items(
        lambda: kube.custom.list_namespaced_custom_object(
            "keda.sh", "v1alpha1", namespace, "scaledobjects", _preload_content=False
        )
    )
    for scaled in scaled_objects:
        target = (scaled.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind", "Deployment") == "Deployment" and target.get("name") == deployment:
            found.append(f"ScaledObject/{scaled['metadata']['name']}")
    return found


@requires(Permission("", "pods", ("list",), "counts ready and starting runtime pods"))
def list_pods(kube: Kube, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
    """Pods matching the label selector."""
    label_selector = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
    return _items(
        lambda: kube.core.list_namespaced_pod(namespace, label_selector=label_selector, _preload_content=False)
    )


@requires(Permission("", "pods", ("patch",), "sets pod-deletion-cost on pods to remove first"))
def mark_for_removal(kube: Kube, namespace: str, pods: list[str]) -> None:
    """Give these pods the lowest deletion cost, so a scale-down removes them first."""
    for name in pods:
        patch = {"metadata": {"annotations": {DELETION_COST: "-1000"}}}
        try:
            kube.core.patch_namespaced_pod(name, namespace, patch, _content_type=MERGE_PATCH, _preload_content=False)
        except ApiException as error:
            if error.status != 404:  # the pod went away by itself: nothing to mark
                raise


TRACK_LABEL = "thermostat.dev/track"


@requires(Permission("", "pods", ("patch",), "puts pods on the stable or canary track of a staged rollout"))
def set_track(kube: Kube, namespace: str, pods: list[str], track: str) -> None:
    """Label these pods ``thermostat.dev/track=<track>``; their runtime follows within a second."""
    for name in pods:
        patch = {"metadata": {"labels": {TRACK_LABEL: track}}}
        try:
            kube.core.patch_namespaced_pod(name, namespace, patch, _content_type=MERGE_PATCH, _preload_content=False)
        except ApiException as error:
            if error.status != 404:  # the pod went away: nothing to relabel
                raise
