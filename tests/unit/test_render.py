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


def test_runtime_limits_from_the_spec_reach_the_pods_command_as_the_servers_own_flags() -> None:
    import typer.main

    from thermostat_runtime.cli import app

    limits = {"maxBatch": 4, "maxQueue": 0, "maxTokensLimit": 1024, "maxPromptTokens": 4096}
    spec = make_spec(model={"image": "img", "resources": {"gpus": 0}, "runtime": limits})
    command = render_deployment(OWNER, spec, replicas=1)["spec"]["template"]["spec"]["containers"][0]["command"]
    rendered = dict(zip(command[2::2], command[3::2], strict=False))
    expected = {"--max-batch": "4", "--max-queue": "0", "--max-tokens-limit": "1024", "--max-prompt-tokens": "4096"}
    assert {flag: rendered.get(flag) for flag in expected} == expected
    group: Any = typer.main.get_command(app)
    with group.commands["serve"].make_context("serve", command[2:]) as context:  # the runtime's own parser
        assert (context.params["max_batch"], context.params["max_queue"]) == (4, 0)
        assert context.params["max_tokens_limit"] == 1024
    unset = render_deployment(OWNER, make_spec(), replicas=1)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert not [part for part in unset if part in expected]  # unset: the runtime's defaults, no pod restart


@pytest.mark.parametrize(
    ("field", "value"), [("maxBatch", 0), ("maxQueue", -1), ("maxTokensLimit", 0), ("maxBatchSize", 8)]
)
def test_runtime_limits_out_of_range_are_refused_by_the_model_and_the_crd(field: str, value: int) -> None:
    import pydantic

    from thermostat.api.crd import routedmodel_crd
    from thermostat.api.validation import validate_against_crd

    raw = {"model": {"image": "img", "runtime": {field: value}}, "slo": {"targetSeconds": 1}, "replicas": {"max": 2}}
    with pytest.raises(pydantic.ValidationError, match=field):
        RoutedModelSpec.model_validate(raw)
    body = {"apiVersion": "thermostat.dev/v1alpha1", "kind": "RoutedModel", "metadata": {"name": "x"}, "spec": raw}
    _, problems = validate_against_crd(routedmodel_crd(), body, "v1alpha1")
    assert any(field in str(problem) for problem in problems), problems


def test_a_target_without_the_routing_knob_gets_no_configmap_or_role() -> None:
    spec = RoutedModelSpec.model_validate(
        {"targetRef": {"name": "vllm"}, "slo": {"targetSeconds": 1.0}, "replicas": {"max": 2},
         "metrics": {"preset": "vLLM"}}
    )  # fmt: skip
    assert render_owned_objects(OWNER, spec, temperature=1.0, replicas=None) == []
    thermostat = spec.model_copy(update={"metrics": spec.metrics.model_copy(update={"preset": "Thermostat"})})
    kinds = [o["kind"] for o in render_owned_objects(OWNER, thermostat, temperature=1.0, replicas=None)]
    assert "ConfigMap" in kinds


def test_with_spec_rollout_the_pods_read_their_track_from_a_downward_api_volume() -> None:
    def pod(spec: RoutedModelSpec) -> dict[str, Any]:
        pod_spec: dict[str, Any] = render_deployment(OWNER, spec, replicas=1)["spec"]["template"]["spec"]
        return pod_spec

    plain = pod(make_spec())
    assert all("downwardAPI" not in v for v in plain["volumes"])
    staged = pod(make_spec(rollout={}))
    (volume,) = [v for v in staged["volumes"] if "downwardAPI" in v]
    assert volume["downwardAPI"]["items"] == [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
    env = {e["name"]: e.get("value") for e in staged["containers"][0]["env"]}
    mounts = {m["name"]: m["mountPath"] for m in staged["containers"][0]["volumeMounts"]}
    assert env["THERMOSTAT_POD_LABELS_FILE"] == f"{mounts[volume['name']]}/labels"


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
