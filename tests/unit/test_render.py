"""Desired manifests: the pod template contract, hardening, safe scale-down, RBAC scoped to one ConfigMap."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from thermostat.api import RoutedModelSpec
from thermostat.render import Owner, format_routing_temperature, render_deployment, render_owned_objects
from thermostat.render.identity import selector_labels

pytestmark = pytest.mark.fast

OWNER = Owner(name="chat", namespace="inference", uid="0b1c-uid")


def make_spec(**overrides: Any) -> RoutedModelSpec:
    raw: dict[str, Any] = {
        "model": {
            "image": "ghcr.io/x/runtime:1",
            "maxRequestSeconds": 90.5,
            "resources": {"gpus": 1, "memory": "16Gi"},
        },
        "slo": {"targetSeconds": 0.6},
        "replicas": {"min": 1, "max": 4},
    }
    raw.update(overrides)
    return RoutedModelSpec.model_validate(raw)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


def test_every_owned_object_is_valid_kubernetes_and_controlled_by_the_routedmodel() -> None:
    objects = render_owned_objects(OWNER, make_spec(), temperature=0.8, replicas=2)
    assert [o["kind"] for o in objects] == [
        "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Service", "PodDisruptionBudget", "Deployment",
    ]  # fmt: skip
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        (reference,) = obj["metadata"]["ownerReferences"]
        assert reference == {
            "apiVersion": "thermostat.dev/v1alpha1",
            "kind": "RoutedModel",
            "name": "chat",
            "uid": "0b1c-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert obj["metadata"]["namespace"] == "inference"


def test_first_container_follows_the_pod_template_contract() -> None:
    deployment = render_deployment(OWNER, make_spec(), replicas=3)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][:2] == ["thermostat-runtime", "serve"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    env = {var["name"]: var for var in container["env"]}
    assert env["THERMOSTAT_ROUTING_CONFIGMAP"]["value"] == "chat-routing"
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1", "memory": "16Gi"}
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["metadata"]["labels"] == selector_labels("chat")


def test_pods_are_hardened_and_drain_for_the_longest_request() -> None:
    pod = render_deployment(OWNER, make_spec(), replicas=1)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "preStop" in container["lifecycle"]
    assert pod["terminationGracePeriodSeconds"] >= 91  # maxRequestSeconds 90.5, rounded up


def test_updates_leave_replicas_to_the_scale_subresource() -> None:
    assert "replicas" not in render_deployment(OWNER, make_spec(), replicas=None)["spec"]


def test_cpu_only_pods_request_no_gpu() -> None:
    spec = make_spec(model={"image": "img", "resources": {"gpus": 0}})
    container = render_deployment(OWNER, spec, replicas=1)["spec"]["template"]["spec"]["containers"][0]
    assert "resources" not in container


def test_role_reads_only_the_routing_configmap() -> None:
    objects = by_kind(render_owned_objects(OWNER, make_spec(), temperature=1.0, replicas=1))
    (rule,) = objects["Role"]["rules"]
    assert rule == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["chat-routing"],
        "verbs": ["list", "watch"],
    }
    assert objects["RoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "chat-runtime", "namespace": "inference"}
    ]
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "chat-runtime"


def test_routing_configmap_holds_a_decimal_string() -> None:
    objects = by_kind(render_owned_objects(OWNER, make_spec(), temperature=0.6, replicas=1))
    assert objects["ConfigMap"]["metadata"]["name"] == "chat-routing"
    assert objects["ConfigMap"]["data"] == {"routing_temperature": "0.6", "slo_target_seconds": "0.6"}
    assert float(format_routing_temperature(1.0)) == 1.0
    with pytest.raises(ValueError, match="outside"):
        format_routing_temperature(0.0)


def test_target_ref_mode_creates_no_pods_and_binds_the_targets_account() -> None:
    spec = RoutedModelSpec.model_validate(
        {
            "targetRef": {"name": "legacy", "routingConfigMap": "legacy-routing"},
            "slo": {"targetSeconds": 1.0},
            "replicas": {"max": 3},
        }
    )
    objects = render_owned_objects(OWNER, spec, temperature=1.0, replicas=None, target_service_account="legacy-sa")
    kinds = by_kind(objects)
    assert set(kinds) == {"Role", "RoleBinding", "ConfigMap"}
    assert kinds["ConfigMap"]["metadata"]["name"] == "legacy-routing"
    assert kinds["RoleBinding"]["subjects"][0]["name"] == "legacy-sa"
    with pytest.raises(ValueError, match="targetRef"):
        render_deployment(OWNER, spec, replicas=1)


def _serve_options(command: list[str]) -> dict[str, Any]:
    """The runtime's own ``serve`` parser applied to a rendered command line (no server started)."""
    import typer.main

    from thermostat_runtime.cli import app

    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    assert command[:2] == ["thermostat-runtime", "serve"]
    return dict(serve.make_context("serve", command[2:]).params)


def test_pods_shadow_the_spec_share_of_requests_by_default() -> None:
    command = render_deployment(OWNER, make_spec(), replicas=1)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert _serve_options(command)["shadow_fraction"] == make_spec().quality.shadow_fraction > 0


def test_pods_shadow_the_share_the_spec_sets() -> None:
    spec = make_spec(quality={"shadowFraction": 0.1})
    command = render_deployment(OWNER, spec, replicas=1)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert _serve_options(command)["shadow_fraction"] == 0.1
