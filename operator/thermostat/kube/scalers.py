"""Other controllers that may set the same Deployment's replicas, and pods to remove first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiException

from thermostat.kube.client import MERGE_PATCH, Kube
from thermostat.kube.permissions import Permission, requires
from thermostat.kube.selectors import selector_query

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


@dataclass(frozen=True)
class Scalers:
    """Other scalers of a Deployment: those found, and what could not be looked at (a 403), if anything."""

    found: tuple[str, ...] = ()
    unknown: str | None = None


def _listed(call: Any, what: str, permission: str, namespace: str) -> tuple[list[dict[str, Any]], str | None]:
    """The items, or none and why when the operator may not list them (403): a fact to report, not a failed run."""
    try:
        return _items(call), None
    except ApiException as error:
        if error.status != 403:
            raise
        return [], (f"the operator may not list {what} in namespace {namespace} (403 Forbidden): grant it "
                    f"`list` on {permission} (the Helm chart's RBAC does)")  # fmt: skip


@requires(
    Permission("autoscaling", "horizontalpodautoscalers", ("list",), "finds HPAs targeting the Deployment"),
    Permission("keda.sh", "scaledobjects", ("list",), "finds KEDA ScaledObjects targeting the Deployment"),
)
def other_scalers(kube: Kube, namespace: str, deployment: str) -> Scalers:
    """HPAs and KEDA ScaledObjects in the namespace that target the Deployment, as ``Kind/name``."""
    found = []
    hpas, hpa_problem = _listed(
        lambda: kube.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace, _preload_content=False),
        "HorizontalPodAutoscalers", "autoscaling/horizontalpodautoscalers", namespace,
    )  # fmt: skip
    for hpa in hpas:
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") == "Deployment" and target.get("name") == deployment:
            found.append(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}")
    scaled_objects, keda_problem = _listed(
        lambda: kube.custom.list_namespaced_custom_object(
            "keda.sh", "v1alpha1", namespace, "scaledobjects", _preload_content=False
        ),
        "KEDA ScaledObjects", "keda.sh/scaledobjects", namespace,
    )  # fmt: skip
    for scaled in scaled_objects:
        target = (scaled.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind", "Deployment") == "Deployment" and target.get("name") == deployment:
            found.append(f"ScaledObject/{scaled['metadata']['name']}")
    problems = [p for p in (hpa_problem, keda_problem) if p]
    return Scalers(tuple(found), "; ".join(problems) or None)


@requires(Permission("", "pods", ("list",), "counts ready and starting runtime pods"))
def list_pods(kube: Kube, namespace: str, selector: dict[str, Any]) -> list[dict[str, Any]]:
    """Pods the Deployment's LabelSelector selects (matchLabels and matchExpressions); none for an empty one."""
    label_selector = selector_query(selector)
    if label_selector is None:
        return []
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
