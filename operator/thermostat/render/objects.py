"""The objects around the runtime Deployment: Service, PDB, routing ConfigMap and its RBAC."""

from __future__ import annotations

from typing import Any

from thermostat.api.spec import RoutedModelSpec
from thermostat.render.identity import (
    Owner,
    routing_configmap_name,
    routing_reader_name,
    selector_labels,
    service_account_name,
)
from thermostat.render.workload import render_deployment

ROUTING_KEY = "routing_temperature"
CANARY_KEY = "canary.routing_temperature"  # what canary pods serve during a staged rollout (DESIGN §3)
# The SLO target the runtime adds to its latency buckets at pod start (DESIGN §3): an SLO edit rewrites
# it without touching the pod template, so it takes effect at the next pod start, never as a restart.
SLO_TARGET_KEY = "slo_target_seconds"


def format_routing_temperature(temperature: float) -> str:
    """The ConfigMap's decimal string for a temperature in (0, 1], e.g. ``"0.6"`` or ``"1.0"``."""
    if not 0.0 < temperature <= 1.0:
        raise ValueError(f"routing temperature {temperature!r} is outside (0, 1]")
    return repr(round(temperature, 4))


def format_slo_target(seconds: float) -> str:
    """The ConfigMap's decimal string for the SLO target, e.g. ``"5.0"`` (what the runtime parses)."""
    return repr(float(seconds))


def render_routing_configmap(owner: Owner, spec: RoutedModelSpec, temperature: float) -> dict[str, Any]:
    """The ConfigMap the pods watch for their routing temperature (DESIGN §3)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owner.metadata(routing_configmap_name(owner.name, spec)),
        "data": {
            ROUTING_KEY: format_routing_temperature(temperature),
            SLO_TARGET_KEY: format_slo_target(spec.slo.target_seconds),
        },
    }


def render_service(owner: Owner, spec: RoutedModelSpec) -> dict[str, Any]:
    """A ClusterIP Service named after the RoutedModel, on the runtime's ``http`` port."""
    port = spec.model.port if spec.model is not None else 8000
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(owner.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(owner.name),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def render_pdb(owner: Owner) -> dict[str, Any]:
    """At most one runtime pod voluntarily disrupted at a time (node drains, cluster upgrades)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": owner.metadata(owner.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(owner.name)}},
    }


def render_rbac(owner: Owner, spec: RoutedModelSpec, *, service_account: str | None = None) -> list[dict[str, Any]]:
    """A Role reading only the routing ConfigMap, bound to the pods' ServiceAccount.

    Without ``service_account`` a ServiceAccount is created for the pods; in targetRef mode the
    existing Deployment's account is bound instead.
    """
    reader = routing_reader_name(owner.name)
    objects: list[dict[str, Any]] = []
    if service_account is None:
        service_account = service_account_name(owner.name)
        objects.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": owner.metadata(service_account)})
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": owner.metadata(reader),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": [routing_configmap_name(owner.name, spec)],
                    # What the runtime's ConfigMap watch sends (list, then watch, by metadata.name); no get.
                    "verbs": ["list", "watch"],
                }
            ],
        }
    )
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": owner.metadata(reader),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": reader},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": owner.namespace}],
        }
    )
    return objects


def render_owned_objects(
    owner: Owner,
    spec: RoutedModelSpec,
    *,
    temperature: float,
    replicas: int | None,
    target_service_account: str | None = None,
) -> list[dict[str, Any]]:
    """Everything a RoutedModel owns, in creation order (RBAC and ConfigMap before the pods need them).

    With ``spec.model``: ServiceAccount, Role, RoleBinding, ConfigMap, Service, PDB, Deployment.
    With ``spec.targetRef``: only the ConfigMap and its Role/RoleBinding for the target's account
    (``target_service_account``, ``default`` when unknown); the Deployment stays the user's. A target
    without the routing knob (``metrics.preset`` vLLM) reads no ConfigMap: nothing is created for it.
    """
    if spec.model is None and not spec.metrics.routing_knob:
        return []
    configmap = render_routing_configmap(owner, spec, temperature)
    if spec.model is None:
        account = target_service_account or "default"
        return [*render_rbac(owner, spec, service_account=account), configmap]
    return [
        *render_rbac(owner, spec),
        configmap,
        render_service(owner, spec),
        render_pdb(owner),
        render_deployment(owner, spec, replicas=replicas),
    ]
