"""The store's write semantics, the patch formats and selectors, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from thermostat_apiserver.deployments import deletion_order
from thermostat_apiserver.errors import ApiError
from thermostat_apiserver.patching import apply_patch, strategic_merge_patch
from thermostat_apiserver.resources import BUILTIN, ResourceType
from thermostat_apiserver.selectors import field_selector, label_selector
from thermostat_apiserver.store import Store

pytestmark = [pytest.mark.fast]

TYPES = {rt.plural: rt for rt in BUILTIN}


def _store() -> Store:
    store = Store(history=100)
    for rt in BUILTIN:
        store.register(rt)
    store.create(TYPES["namespaces"], None, {"metadata": {"name": "default"}})
    return store


def _deploy(store: Store, **spec: Any) -> dict[str, Any]:
    return store.create(TYPES["deployments"], "default", {"metadata": {"name": "d"}, "spec": {"replicas": 1, **spec}})


def test_generation_follows_spec_only_and_no_op_writes_change_nothing() -> None:
    store = _store()
    rt: ResourceType = TYPES["deployments"]
    created = _deploy(store)
    same = store.update(rt, "default", "d", created)
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    with_status = {**same, "status": {"replicas": 1}}
    after_status = store.update(rt, "default", "d", with_status, subresource="status")
    assert after_status["metadata"]["generation"] == 1
    assert after_status["status"] == {"replicas": 1}
    spec_write = {**after_status, "spec": {**after_status["spec"], "replicas": 2}, "status": {}}
    after_spec = store.update(rt, "default", "d", spec_write)
    assert after_spec["metadata"]["generation"] == 2
    assert after_spec["status"] == {"replicas": 1}  # a write to the object never touches status


def test_a_stale_resource_version_is_refused_with_409() -> None:
    store = _store()
    created = _deploy(store)
    store.update(TYPES["deployments"], "default", "d", {**created, "spec": {"replicas": 3}})
    with pytest.raises(ApiError) as refused:
        store.update(TYPES["deployments"], "default", "d", {**created, "spec": {"replicas": 4}})
    assert refused.value.code == 409


def test_a_write_into_a_missing_namespace_is_refused() -> None:
    with pytest.raises(ApiError, match='namespaces "nowhere" not found'):
        _store().create(TYPES["configmaps"], "nowhere", {"metadata": {"name": "x"}})


def test_strategic_merge_patch_merges_containers_by_name_and_keeps_order() -> None:
    target = {"containers": [{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]}, {"name": "b"}]}
    patch = {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "image": "a:2"}, {"name": "b", "$patch": "delete"}],
    }
    assert strategic_merge_patch(target, patch) == {
        "containers": [{"name": "a", "image": "a:2", "ports": [{"containerPort": 80}]}]
    }


def test_merge_patch_null_deletes_and_unknown_patch_types_are_415() -> None:
    assert apply_patch("application/merge-patch+json", {"a": 1, "b": {"c": 2}}, {"b": {"c": None}}) == {"a": 1, "b": {}}
    with pytest.raises(ApiError) as refused:
        apply_patch("application/xml", {}, {})
    assert refused.value.code == 415


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("app=web", ["web-1", "web-2"]),
        ("app!=web", ["db"]),
        ("tier in (front,back),app", ["web-1", "db"]),
        ("!tier", ["web-2"]),
        ("app notin (web)", ["db"]),
    ],
)
def test_label_selectors(selector: str, selected: list[str]) -> None:
    objs = [
        {"metadata": {"name": "web-1", "labels": {"app": "web", "tier": "front"}}},
        {"metadata": {"name": "web-2", "labels": {"app": "web"}}},
        {"metadata": {"name": "db", "labels": {"app": "db", "tier": "back"}}},
    ]
    matches = label_selector(selector)
    assert [o["metadata"]["name"] for o in objs if matches(o)] == selected


def test_field_selectors_read_nested_fields() -> None:
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "RoutedModel", "name": "chat"}}
    assert field_selector("involvedObject.kind=RoutedModel,involvedObject.name=chat")(event)
    assert not field_selector("involvedObject.name!=chat")(event)
    with pytest.raises(ApiError):
        field_selector("metadata.name")


def _pod(name: str, *, ready: bool, cost: int | None = None, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    annotations = {} if cost is None else {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    return {
        "metadata": {"name": name, "annotations": annotations, "creationTimestamp": created},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_scale_down_order_not_ready_then_lowest_cost_then_newest() -> None:
    pods = [
        _pod("old-cheap", ready=True, cost=-5),
        _pod("pending", ready=False, cost=100),
        _pod("new", ready=True, created="2026-01-02T00:00:00Z"),
        _pod("old", ready=True),
        _pod("precious", ready=True, cost=50),
    ]
    assert [p["metadata"]["name"] for p in deletion_order(pods)] == ["pending", "old-cheap", "new", "old", "precious"]
