"""Desired manifests of a RoutedModel's owned objects: pure functions from the spec to object dicts.

``render_owned_objects`` returns everything the operator creates for a RoutedModel (runtime
Deployment, Service, PodDisruptionBudget, routing ConfigMap, ServiceAccount, Role, RoleBinding), each
carrying the RoutedModel as its controlling owner so deletion cascades. Nothing here talks to the
API: ``thermostat.kube`` applies what these functions return.
"""

from thermostat.render.identity import Owner, owned_labels, routing_configmap_name, selector_labels
from thermostat.render.objects import (
    format_routing_temperature,
    render_owned_objects,
    render_pdb,
    render_rbac,
    render_routing_configmap,
    render_service,
)
from thermostat.render.workload import render_deployment, termination_grace_seconds

__all__ = [
    "Owner",
    "format_routing_temperature",
    "owned_labels",
    "render_deployment",
    "render_owned_objects",
    "render_pdb",
    "render_rbac",
    "render_routing_configmap",
    "render_service",
    "routing_configmap_name",
    "selector_labels",
    "termination_grace_seconds",
]
