"""The operator's policies, against the pure planners with an injected clock (no cluster, no sleeps).

Each scenario is a user's: Recommend on someone else's Deployment writes nothing; Recommend with a
model creates the workload exact and small, then never touches it; an HPA leaves us the temperature;
a person's ``kubectl scale`` is adopted, two in a row are a conflict that clears once they stop; a
missing target and an API refusal both say so in ``Ready``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from kubernetes.client import ApiException

from thermostat.api import RoutedModelSpec
from thermostat.control import Decision
from thermostat.control.types import Verdict
from thermostat.metrics import prometheus_config
from thermostat.reconcile import (
    Actions,
    ApplyObject,
    PatchConfigMap,
    ReplicaWatch,
    Scale,
    Subject,
    Workload,
    World,
    apply,
    plan_actions,
    plan_owned,
    settle,
)
from thermostat.reconcile.plan import quiet_seconds
from thermostat.settings import OperatorSettings

pytestmark = pytest.mark.fast
NAMESPACE, NAME = "prod", "chat"


def make_spec(**overrides: Any) -> RoutedModelSpec:
    raw: dict[str, Any] = {
        "model": {"image": "thermostat/runtime:1"},
        "slo": {"targetSeconds": 1.0},
        "replicas": {"min": 1, "max": 6},
        "behavior": {"periodSeconds": 15},
    }
    raw.update(overrides)
    return RoutedModelSpec.model_validate(raw)


DROP_IN = {"model": None, "targetRef": {"name": "vllm"}}


def body(spec: RoutedModelSpec, status: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {"name": NAME, "namespace": NAMESPACE, "uid": "u-1", "generation": 1}
    return {"metadata": meta, "spec": spec.model_dump(mode="json", by_alias=True), "status": status or {}}


def world(
    spec: RoutedModelSpec,
    *,
    replicas: int | None = 2,
    temperature: float = 0.8,
    now: float = 0.0,
    status: dict[str, Any] | None = None,
    **fields: Any,
) -> World:
    """What a run would have read: the Deployment (None: absent) at ``replicas``, all of them ready."""
    name = spec.target_ref.name if spec.target_ref else NAME
    selector = {"matchLabels": {"app": name}}
    workload = None if replicas is None else Workload(name, replicas, replicas, selector, "runner")
    ours = {"name": f"{NAME}-routing", "annotations": {"thermostat.dev/created-by": NAME}}
    fields.setdefault("configmap", {"metadata": ours, "data": {"routing_temperature": repr(temperature)}})
    return World(now=now, subject=Subject.from_body(body(spec, status)), spec=spec, workload=workload,
                 temperature=temperature, **fields)  # fmt: skip


def wants(temperature: float, replicas: int, *, held: bool = False) -> Decision:
    metrics = Verdict("False" if held else "True", "MetricsMissing" if held else "MetricsFresh", "m")
    return Decision(temperature, replicas, "p95 1.40s > SLO 1.00s", {}, {"MetricsAvailable": metrics}, held=held)


def kinds(actions: Actions) -> list[str]:
    return [type(w).__name__ for w in actions.writes]


def reasons(actions: Actions) -> list[str]:
    return [e.reason for e in actions.events]


# --- Recommend ---------------------------------------------------------------------------------------


def test_recommend_on_a_target_deployment_creates_nothing_and_changes_nothing() -> None:
    spec = make_spec(mode="Recommend", **DROP_IN)
    assert plan_owned(world(spec, configmap=None), spec).writes == ()  # no ConfigMap, no Role, no RoleBinding
    actions = plan_actions(world(spec), wants(0.5, 4), spec, now=0.0)
    assert actions.writes == ()  # no temperature, no scale, no pod marks
    assert not actions.applied
    assert actions.after == actions.before


def test_recommend_with_a_model_creates_the_workload_exact_and_at_min_then_never_changes_it() -> None:
    spec = make_spec(mode="Recommend", replicas={"min": 2, "max": 6})
    remembered = {"current": {"routingTemperature": 0.6, "replicas": 5}}  # e.g. left by an earlier Enforce
    first = plan_owned(world(spec, replicas=None, configmap=None, status=remembered), spec)
    objects = {w.manifest["kind"]: w.manifest for w in first.writes if isinstance(w, ApplyObject)}
    assert objects["ConfigMap"]["data"] == {"routing_temperature": "1.0", "slo_target_seconds": "1.0"}
    assert objects["Deployment"]["spec"]["replicas"] == 2
    later = plan_owned(world(spec, replicas=3, temperature=0.7), spec)  # a spec edit, with the workload there
    objects = {w.manifest["kind"]: w.manifest for w in later.writes if isinstance(w, ApplyObject)}
    assert "replicas" not in objects["Deployment"]["spec"]
    assert objects["ConfigMap"]["data"] == {"routing_temperature": "0.7", "slo_target_seconds": "1.0"}
    assert plan_actions(world(spec), wants(0.5, 4), spec, now=0.0).writes == ()


def test_recommend_keeps_its_warnings() -> None:
    spec = make_spec(mode="Recommend", **DROP_IN)
    seen = world(spec, replicas=4, watch=ReplicaWatch(expected=2))
    actions = plan_actions(seen, replace(wants(1.0, 4), memory_reset=True), spec, now=0.0)
    assert reasons(actions) == ["ReplicasChangedExternally", "MemoryReset"]
    assert all(e.warning for e in actions.events)


# --- Enforce ------------------------------------------------------------------------------------------


def test_enforce_writes_both_knobs_each_with_its_event_and_marks_pods_on_the_way_down() -> None:
    spec = make_spec()
    pods = tuple({"metadata": {"name": f"chat-{i}", "creationTimestamp": f"2026-01-0{i + 1}T00:00:00Z",
                               "labels": {"app": NAME}}} for i in range(3))  # fmt: skip
    actions = plan_actions(world(spec, replicas=3, pods=pods, watch=ReplicaWatch(expected=3)), wants(0.6, 2), spec,
                           now=0.0)  # fmt: skip
    config, scale = actions.writes
    assert isinstance(config, PatchConfigMap)
    assert config.data == {"routing_temperature": "0.6"}
    assert config.event.reason == "RoutingTemperatureChanged"
    assert isinstance(scale, Scale)
    assert (scale.replicas, scale.mark, scale.event.reason) == (2, ("chat-2",), "ReplicasChanged")
    assert actions.applied


def test_another_scaler_leaves_us_the_temperature_only() -> None:
    spec = make_spec()
    hpa = ("HorizontalPodAutoscaler/chat",)
    actions = plan_actions(world(spec, replicas=3, scalers=hpa, watch=ReplicaWatch(expected=2)), wants(0.6, 5), spec,
                           now=0.0)  # fmt: skip
    assert kinds(actions) == ["PatchConfigMap"]
    conflict = actions.verdicts["Conflict"]
    assert (conflict.status, conflict.reason) == ("True", "OtherScaler")
    assert "HorizontalPodAutoscaler/chat" in conflict.message
    assert reasons(actions) == ["OtherScaler"]  # said once; the HPA's scaling is not a manual change
    assert "yields the replicas" in actions.events[0].message
    assert not actions.applied
    said = {"conditions": [{"type": "Conflict", "status": "True", "reason": "OtherScaler", "message": "m",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}  # fmt: skip
    again = plan_actions(world(spec, replicas=3, scalers=hpa, status=said, watch=ReplicaWatch(expected=2)),
                         wants(0.6, 5), spec, now=15.0)  # fmt: skip
    assert reasons(again) == []


def test_scalers_that_cannot_be_listed_are_an_unknown_conflict_not_a_failed_run() -> None:
    spec = make_spec()
    why = "the operator may not list HorizontalPodAutoscalers in namespace prod (403 Forbidden)"
    actions = plan_actions(world(spec, replicas=2, scalers_unknown=why, watch=ReplicaWatch(expected=2)),
                           wants(0.8, 3), spec, now=0.0)  # fmt: skip
    conflict = actions.verdicts["Conflict"]
    assert (conflict.status, conflict.reason) == ("Unknown", "ScalersUnknown")
    assert why in conflict.message
    assert kinds(actions) == ["Scale"]  # replicas still steered; an HPA undoing them is ReplicasOverridden


# --- Replicas changed outside Thermostat ---------------------------------------------------------------


class Cluster:
    """Runs plan_actions period after period, keeping the replica watch as the operator's memo does."""

    def __init__(self, spec: RoutedModelSpec, replicas: int) -> None:
        self.spec, self.replicas, self.now = spec, replicas, 0.0
        self.watch = ReplicaWatch(expected=replicas)

    def run(self, wanted: int) -> Actions:
        actions = plan_actions(world(self.spec, replicas=self.replicas, watch=self.watch, now=self.now),
                               wants(0.8, wanted), self.spec, now=self.now)  # fmt: skip
        self.watch = actions.watch
        self.replicas = actions.after.replicas or self.replicas
        self.now += self.spec.behavior.period_seconds
        return actions


def conflict_of(actions: Actions) -> str:
    return actions.verdicts["Conflict"].status


def test_one_manual_scale_is_adopted_and_said() -> None:
    cluster = Cluster(make_spec(), replicas=2)
    assert reasons(cluster.run(2)) == []
    cluster.replicas = 4  # kubectl scale --replicas 4
    adopted = cluster.run(4)  # the law starts from 4 and agrees
    assert reasons(adopted) == ["ReplicasChangedExternally"]
    assert "set to 4 outside Thermostat (last seen 2)" in adopted.events[0].message
    assert conflict_of(adopted) == "False"
    assert conflict_of(cluster.run(4)) == "False"


def test_manual_scales_hours_apart_are_each_adopted_never_a_conflict() -> None:
    cluster = Cluster(make_spec(), replicas=2)
    cluster.replicas = 3
    assert conflict_of(cluster.run(3)) == "False"
    cluster.now += 4 * 3600.0  # hours of quiet, same spec generation
    cluster.run(3)
    cluster.replicas = 4
    again = cluster.run(4)
    assert reasons(again) == ["ReplicasChangedExternally"]
    assert conflict_of(again) == "False"


def test_two_consecutive_manual_scales_are_a_conflict_that_clears_when_the_person_stops() -> None:
    spec = make_spec()
    cluster = Cluster(spec, replicas=2)
    cluster.replicas = 4
    cluster.run(4)
    cluster.replicas = 1  # again, before Thermostat wrote anything
    fight = cluster.run(3)
    assert conflict_of(fight) == "True"
    assert fight.verdicts["Conflict"].reason == "ReplicasOverridden"
    assert reasons(fight) == ["ReplicasOverridden"]
    assert kinds(fight) == []  # the law wanted 3: no scale while in conflict
    while cluster.now < fight.watch.last_change_s + quiet_seconds(spec):  # type: ignore[operator]
        assert conflict_of(cluster.run(3)) == "True"  # nobody touches the replicas now
    cleared = cluster.run(3)
    assert conflict_of(cleared) == "False"
    assert kinds(cleared) == ["Scale"]


def test_a_tool_undoing_every_write_is_a_conflict() -> None:
    cluster = Cluster(make_spec(), replicas=1)
    assert kinds(cluster.run(2)) == ["Scale"]
    cluster.replicas = 1  # a GitOps sync puts the committed count back
    undone = cluster.run(2)
    assert reasons(undone) == ["ReplicasChangedExternally"]
    assert kinds(undone) == ["Scale"]
    cluster.replicas = 1
    assert conflict_of(cluster.run(2)) == "True"


# --- Missing target, refused writes ----------------------------------------------------------------------


def test_a_missing_target_is_reported_and_nothing_is_written() -> None:
    spec = make_spec(**DROP_IN)
    absent = world(spec, replicas=None, configmap=None)
    owned = plan_owned(absent, spec)
    assert owned.writes == ()
    assert owned.retry == "target Deployment prod/vllm not found"
    settled = settle(absent, None, plan_actions(absent, None, spec, now=0.0), apply(FakeKube(), REF, Actions()))
    ready = next(c for c in settled.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "TargetNotFound")
    assert settled.event is not None
    assert settled.event.reason == "TargetNotFound"


class FakeKube:
    """The write methods ``apply`` calls, refusing the ones named in ``refuse``; Events recorded."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.refuse, self.writes, self.events = refuse, [], []  # type: ignore[var-annotated]

    def _write(self, what: str) -> None:
        if what in self.refuse:
            denial = {"kind": "Status", "message": f'configmaps "{NAME}-routing" is forbidden: quota exceeded'}
            raise ApiException(status=403, reason="Forbidden", body=json.dumps(denial))
        self.writes.append(what)

    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._write(f"patch {kind}")

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self._write("scale")

    def apply(self, desired: dict[str, Any]) -> str:
        self._write(f"apply {desired['kind']}")
        return "created"

    def post_event(self, about: Any, *, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(reason)


REF = Subject.from_body(body(make_spec())).ref


def test_a_refused_write_makes_ready_false_apply_failed_in_the_apis_words() -> None:
    spec = make_spec()
    seen = world(spec, replicas=2, watch=ReplicaWatch(expected=2))
    actions = plan_actions(seen, wants(0.6, 3), spec, now=0.0)
    kube = FakeKube(refuse=("patch ConfigMap",))
    outcome = apply(kube, REF, actions)  # type: ignore[arg-type]
    assert kube.writes == []  # the scale after the refused patch is not attempted
    assert "RoutingTemperatureChanged" not in kube.events
    settled = settle(seen, wants(0.6, 3), actions, outcome)
    ready = next(c for c in settled.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "ApplyFailed")
    assert 'configmaps "chat-routing" is forbidden: quota exceeded' in ready.message
    assert settled.status.current is not None
    assert (settled.status.current.routing_temperature, settled.status.current.replicas) == (0.8, 2)
    assert not settled.status.decisions[-1].applied
    assert settled.watch.expected == 2  # the scale never happened
    assert settled.event is not None
    assert settled.event.reason == "ApplyFailed"


def test_prometheus_timeout_above_five_seconds_takes_effect() -> None:
    spec = make_spec(metrics={"prometheus": {"url": "http://prom:9090", "timeoutSeconds": 20}})
    ceiling = OperatorSettings().prometheus_timeout_seconds  # the operator's default
    config = prometheus_config(spec, auth=None, default_url=None, timeout_ceiling_s=ceiling)
    assert config.timeout_s == 20
    assert prometheus_config(spec, auth=None, default_url=None, timeout_ceiling_s=2.0).timeout_s == 2.0


def test_an_slo_edit_rewrites_the_configmaps_target_and_not_the_pods_nor_the_temperature() -> None:
    spec = make_spec()
    before = plan_owned(world(spec, replicas=3, temperature=0.7), spec)
    edited = make_spec(slo={"targetSeconds": 2.5})
    after = plan_owned(world(edited, replicas=3, temperature=0.7), edited)
    objects = [
        {w.manifest["kind"]: w.manifest for w in a.writes if isinstance(w, ApplyObject)}
        for a in (before, after)
    ]
    assert objects[1]["ConfigMap"]["data"] == {"routing_temperature": "0.7", "slo_target_seconds": "2.5"}
    assert objects[1]["Deployment"]["spec"]["template"] == objects[0]["Deployment"]["spec"]["template"]


# --- The routing ConfigMap deleted by hand ------------------------------------------------------------


def test_our_deleted_routing_configmap_is_recreated_with_the_temperature_in_force() -> None:
    spec = make_spec()
    actions = plan_actions(world(spec, temperature=0.6, configmap=None), wants(0.6, 2, held=True), spec, now=0.0)
    (write,) = actions.writes
    assert isinstance(write, ApplyObject)
    assert write.manifest["metadata"]["name"] == f"{NAME}-routing"
    assert write.manifest["data"] == {"routing_temperature": "0.6", "slo_target_seconds": "1.0"}
    assert reasons(actions) == ["RoutingConfigMapRecreated"]


def test_a_users_routing_configmap_or_a_recommend_drop_in_is_never_created() -> None:
    users = make_spec(model=None, targetRef={"name": "vllm", "routingConfigMap": "theirs"})
    advice = make_spec(mode="Recommend", **DROP_IN)
    for spec in (users, advice):
        assert plan_actions(world(spec, configmap=None), wants(0.8, 2), spec, now=0.0).writes == ()
