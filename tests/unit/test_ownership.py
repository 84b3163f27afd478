"""targetRef never takes what the user owns: adoption marks, release, foreign objects, label selectors. Pure."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from test_reconcile_policies import DROP_IN, NAME, NAMESPACE, make_spec, wants, world

from thermostat.api.resource import CREATED_BY_ANNOTATION, MANAGED_BY_ANNOTATION, ORIGINAL_DATA_ANNOTATION
from thermostat.kube.diff import foreign
from thermostat.kube.selectors import selector_matches, selector_query
from thermostat.reconcile import ApplyObject, PatchObject, Workload, plan_actions, plan_owned, plan_release
from thermostat.render.ownership import adoption_patch, release_patch

pytestmark = pytest.mark.fast

USERS_CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "vllm-routing",
        "namespace": NAMESPACE,
        "labels": {"team": "ml"},
        "annotations": {"owner": "ml-platform"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": "users-uid"}],
    },
    "data": {"routing_temperature": "1.0", "other": "kept"},
}


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def drop_in_spec() -> Any:
    return make_spec(**{**DROP_IN, "targetRef": {"name": "vllm", "routingConfigMap": "vllm-routing"}})


def test_a_users_configmap_is_only_marked_never_owned_and_given_back_as_it_was() -> None:
    spec = drop_in_spec()
    actions = plan_owned(world(spec, configmap=copy.deepcopy(USERS_CONFIGMAP)), spec)
    (adopt,) = [w for w in actions.writes if isinstance(w, PatchObject) and w.kind == "ConfigMap"]
    applied = [w.manifest["kind"] for w in actions.writes if isinstance(w, ApplyObject)]
    assert applied == ["Role", "RoleBinding"]  # created, so owned; the user's ConfigMap is not applied
    # Only marked, and the keys it lacks added (the SLO target); the user's temperature is not touched.
    assert set(adopt.patch) <= {"metadata", "data"}
    assert set(adopt.patch.get("data", {})) <= {"slo_target_seconds"}
    assert set(adopt.patch["metadata"]) == {"annotations"}
    adopted = merge(USERS_CONFIGMAP, adopt.patch)
    assert adopted["metadata"]["annotations"][MANAGED_BY_ANNOTATION] == NAME
    assert adopted["metadata"]["ownerReferences"] == USERS_CONFIGMAP["metadata"]["ownerReferences"]
    driven = merge(adopted, {"data": {"routing_temperature": "0.4"}})  # what the control run writes
    again = plan_owned(world(spec, configmap=driven), spec).writes
    assert not [w for w in again if isinstance(w, PatchObject) and w.kind == "ConfigMap"]  # marked once only
    patch = release_patch(driven, NAME)
    assert merge(driven, patch) == USERS_CONFIGMAP  # byte for byte: temperature restored, marks gone


def test_an_slo_edit_reaches_a_users_configmap_already_driven_but_never_its_temperature() -> None:
    spec = drop_in_spec()
    (adopt,) = [w for w in plan_owned(world(spec, configmap=copy.deepcopy(USERS_CONFIGMAP)), spec).writes
                if isinstance(w, PatchObject) and w.kind == "ConfigMap"]  # fmt: skip
    driven = merge(merge(USERS_CONFIGMAP, adopt.patch), {"data": {"routing_temperature": "0.4"}})
    edited = spec.model_copy(update={"slo": spec.slo.model_copy(update={"target_seconds": 7.5})})
    (update,) = [w for w in plan_owned(world(edited, configmap=driven), edited).writes
                 if isinstance(w, PatchObject) and w.kind == "ConfigMap"]  # fmt: skip
    assert update.patch == {"data": {"slo_target_seconds": "7.5"}}


def test_a_users_configmap_without_the_routing_key_gets_it_and_loses_it_again() -> None:
    users = {"metadata": {"name": "vllm-routing"}, "data": {"other": "kept"}}
    patch = adoption_patch(users, NAME, data={"routing_temperature": "1.0"})
    assert patch is not None
    adopted = merge(users, patch)
    assert adopted["data"] == {"other": "kept", "routing_temperature": "1.0"}
    assert json.loads(adopted["metadata"]["annotations"][ORIGINAL_DATA_ANNOTATION]) == {"routing_temperature": None}
    released = merge(adopted, release_patch(adopted, NAME))
    assert released["data"] == {"other": "kept"}
    assert released["metadata"].get("annotations") in (None, {})


def test_the_target_deployment_is_marked_and_released_and_nothing_else_of_it_is_written() -> None:
    spec = drop_in_spec()
    actions = plan_owned(world(spec, configmap=copy.deepcopy(USERS_CONFIGMAP)), spec)
    (mark,) = [w for w in actions.writes if isinstance(w, PatchObject) and w.kind == "Deployment"]
    assert mark.patch == {"metadata": {"annotations": {MANAGED_BY_ANNOTATION: NAME}}}
    deployment = {"metadata": {"name": "vllm", "annotations": {MANAGED_BY_ANNOTATION: NAME}}, "spec": {"replicas": 3}}
    (released,) = plan_release(NAME, {"Deployment": deployment, "ConfigMap": None})
    assert released.patch == {"metadata": {"annotations": {MANAGED_BY_ANNOTATION: None}}}
    assert plan_release("another", {"Deployment": deployment}) == []  # not ours to release


def test_an_object_driven_by_another_routedmodel_is_refused_with_a_reason() -> None:
    spec = drop_in_spec()
    other = copy.deepcopy(USERS_CONFIGMAP)
    other["metadata"]["annotations"][MANAGED_BY_ANNOTATION] = "other-model"
    actions = plan_owned(world(spec, configmap=other), spec)
    assert actions.writes == ()
    assert actions.health.apply_error
    assert "already driven by RoutedModel other-model" in actions.health.apply_error
    run = plan_actions(world(spec, configmap=other), wants(0.5, 4), spec, now=0.0)
    assert run.writes == ()  # the control run does not write another RoutedModel's temperature either
    assert run.health.apply_error == actions.health.apply_error


def test_an_existing_object_the_routedmodel_did_not_create_is_foreign() -> None:
    desired = {"metadata": {"annotations": {CREATED_BY_ANNOTATION: NAME}, "ownerReferences": [{"uid": "u-1"}]}}
    assert foreign({"metadata": {"name": "chat-routing-reader"}}, desired)
    assert not foreign({"metadata": {"annotations": {CREATED_BY_ANNOTATION: NAME}}}, desired)
    assert not foreign({"metadata": {"ownerReferences": [{"uid": "u-1"}]}}, desired)  # made by an older version
    spec = make_spec(**DROP_IN)  # no routingConfigMap: `chat-routing` is the operator's to create
    unnamed = plan_owned(world(spec, configmap=copy.deepcopy(USERS_CONFIGMAP)), spec)
    assert [w.manifest["kind"] for w in unnamed.writes if isinstance(w, ApplyObject)][-1] == "ConfigMap"


SELECTOR = {
    "matchLabels": {"app": "vllm"},
    "matchExpressions": [
        {"key": "track", "operator": "In", "values": ["stable", "blue"]},
        {"key": "debug", "operator": "DoesNotExist"},
        {"key": "tier", "operator": "NotIn", "values": ["batch"]},
        {"key": "gpu", "operator": "Exists"},
    ],
}


@pytest.mark.parametrize(
    ("labels", "selected"),
    [
        ({"app": "vllm", "track": "stable", "gpu": "h100"}, True),
        ({"app": "vllm", "track": "blue", "gpu": "a", "tier": "online"}, True),
        ({"app": "vllm", "track": "canary", "gpu": "a"}, False),  # In
        ({"app": "vllm", "track": "stable", "gpu": "a", "debug": "1"}, False),  # DoesNotExist
        ({"app": "vllm", "track": "stable", "gpu": "a", "tier": "batch"}, False),  # NotIn
        ({"app": "vllm", "track": "stable"}, False),  # Exists
        ({"app": "web", "track": "stable", "gpu": "a"}, False),  # matchLabels
    ],
)
def test_label_selectors_have_the_full_kubernetes_semantics(labels: dict[str, str], selected: bool) -> None:
    assert selector_matches(SELECTOR, labels) is selected


def test_the_selector_query_carries_expressions_and_an_empty_selector_selects_nothing() -> None:
    assert selector_query(SELECTOR) == "app=vllm,track in (blue,stable),!debug,tier notin (batch),gpu"
    assert selector_query({}) is None
    assert not selector_matches({}, {"app": "anything"})
    with pytest.raises(ValueError, match="Matches"):
        selector_query({"matchExpressions": [{"key": "a", "operator": "Matches"}]})


def test_scale_down_marks_only_the_targets_own_pods() -> None:
    spec = make_spec(**DROP_IN)
    pods = tuple(
        {"metadata": {"name": name, "labels": labels, "creationTimestamp": f"2026-01-0{i + 1}T00:00:00Z"}}
        for i, (name, labels) in enumerate(
            [("vllm-a", {"app": "vllm", "track": "stable", "gpu": "a"}),
             ("vllm-b", {"app": "vllm", "track": "stable", "gpu": "a"}),
             ("canary", {"app": "vllm", "track": "canary", "gpu": "a"})]  # newest, but not the target's
        )
    )  # fmt: skip
    base = world(spec, replicas=2, pods=pods)
    assert base.workload is not None
    target = Workload("vllm", 2, 2, SELECTOR, "runner")
    from dataclasses import replace

    from thermostat.reconcile import ReplicaWatch

    actions = plan_actions(replace(base, workload=target, watch=ReplicaWatch(expected=2)), wants(0.8, 1), spec, now=0)
    (scale,) = [w for w in actions.writes if type(w).__name__ == "Scale"]
    assert scale.mark == ("vllm-b",)
