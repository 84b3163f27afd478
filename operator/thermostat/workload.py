"""Create or update a RoutedModel's owned objects (on create, update and operator resume).

Idempotent: objects already as desired are not written, the routing ConfigMap's temperature and the
Deployment's replicas are never reset (the control loop owns them once they exist), so a restarted
operator changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from thermostat.api.spec import RoutedModelSpec
from thermostat.kube import Kube
from thermostat.render import Owner, render_owned_objects, routing_configmap_name
from thermostat.render.objects import ROUTING_KEY
from thermostat.status import parse_status

logger = logging.getLogger(__name__)


@dataclass
class ApplyResult:
    """What applying the owned objects did, or why it could not."""

    changed: list[str] = field(default_factory=list)  # "created Deployment/chat", ...
    target_missing: str | None = None


def target_deployment_name(name: str, spec: RoutedModelSpec) -> str:
    """The Deployment the loop drives: the RoutedModel's own, or the targetRef's."""
    return spec.target_ref.name if spec.target_ref is not None else name


def configmap_temperature(configmap: dict[str, Any] | None) -> float | None:
    """The temperature a routing ConfigMap holds, or None when absent or unreadable."""
    raw = ((configmap or {}).get("data") or {}).get(ROUTING_KEY)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and 0.0 < value <= 1.0 else None


def initial_settings(
    body: dict[str, Any], spec: RoutedModelSpec, live_configmap: dict[str, Any] | None
) -> tuple[float, int]:
    """Temperature and replicas to create with: what is in force, else what status remembers, else defaults."""
    status = parse_status(body.get("status"))
    current = status.current if status else None
    temperature = configmap_temperature(live_configmap)
    if temperature is None:
        temperature = (current.routing_temperature if current else None) or spec.quality.max_routing_temperature
    replicas = (current.replicas if current else None) or spec.replicas.min
    return temperature, replicas


def apply_workload(kube: Kube, body: dict[str, Any], spec: RoutedModelSpec) -> ApplyResult:
    """Render and apply every owned object; ApiExceptions propagate for Kopf to retry."""
    owner = Owner.from_body(body)
    result = ApplyResult()
    configmap_name = routing_configmap_name(owner.name, spec)
    live_configmap = kube.read("ConfigMap", owner.namespace, configmap_name)
    temperature, replicas = initial_settings(body, spec, live_configmap)
    account = None
    if spec.model is not None and kube.read("Deployment", owner.namespace, owner.name) is not None:
        replicas_on_create: int | None = None  # the scale subresource owns replicas once it exists
    else:
        replicas_on_create = replicas
    if spec.target_ref is not None:
        target = kube.read("Deployment", owner.namespace, spec.target_ref.name)
        if target is None:
            result.target_missing = f"{owner.namespace}/{spec.target_ref.name}"
            return result
        account = target["spec"]["template"]["spec"].get("serviceAccountName") or "default"
    for rendered in render_owned_objects(
        owner, spec, temperature=temperature, replicas=replicas_on_create, target_service_account=account
    ):
        desired = rendered
        if rendered["kind"] == "ConfigMap" and live_configmap is not None:
            # The loop owns the temperature once the ConfigMap exists: keep what is in force.
            desired = {**rendered, "data": live_configmap.get("data") or rendered["data"]}
        outcome = kube.apply(desired)
        if outcome != "unchanged":
            result.changed.append(f"{outcome} {desired['kind']}/{desired['metadata']['name']}")
    if result.changed:
        logger.info("applied %s/%s: %s", owner.namespace, owner.name, ", ".join(result.changed))
    return result
