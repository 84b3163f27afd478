"""A router change (``spec.model.image``) staged on a canary Deployment, through the real reconcile.

A small in-memory cluster keeps the Deployments (stable and canary), their pods, the routing
ConfigMap and the RoutedModel's status between runs; a Deployment's pods follow its replicas and
image as a ReplicaSet would (a template change replaces them). Each run starts from the status the
previous one wrote. The law's replicas (the decision) are the total of both Deployments.
"""

from __future__ import annotations

import copy
import json
import zlib
from typing import Any

import pytest
from tests.unit.test_rollout_reconcile import GOOD, HARMFUL, LOW

from thermostat.api import RoutedModelSpec
from thermostat.control import Decision
from thermostat.control.types import Verdict
from thermostat.reconcile import Subject, Workload, World, apply, plan_actions, plan_owned, settle
from thermostat.reconcile.actions import ApplyObject
from thermostat.render import Owner, render_deployment
from thermostat.render.workload import runtime_image
from thermostat.status import status_patch

pytestmark = pytest.mark.fast
NAMESPACE, NAME, CANARY = "prod", "chat", "chat-canary"
OLD, NEW = "thermostat/runtime:1", "thermostat/runtime:2"


def spec(image: str, *, rollout: bool = True) -> RoutedModelSpec:
    raw: dict[str, Any] = {
        "model": {"image": image}, "slo": {"targetSeconds": 1.0}, "replicas": {"min": 1, "max": 8},
    }  # fmt: skip
    if rollout:
        raw["rollout"] = {"steps": [25, 50], "analysis": {"intervalSeconds": 60, "minRequests": 100}}
    return RoutedModelSpec.model_validate(raw)


BODY_META = {"name": NAME, "namespace": NAMESPACE, "uid": "u", "generation": 1}


class Cluster:
    """Deployments, their pods, the ConfigMap and status, kept between runs; the writes ``apply`` makes."""

    def __init__(self, replicas: int = 4) -> None:
        self.spec = spec(OLD)
        owner = Owner.from_body({"metadata": BODY_META})
        self.deployments: dict[str, dict[str, Any]] = {NAME: render_deployment(owner, self.spec, replicas=replicas)}
        self.data: dict[str, str] = {"routing_temperature": "0.8"}
        self.status: dict[str, Any] = {}
        self.annotations: dict[str, str] = {}
        self.events: list[str] = []
        self.pod_labels: dict[str, dict[str, str]] = {}
        self.core = self

    # -- the API the writes use
    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        for key, value in patch["data"].items():
            self.data.pop(key, None) if value is None else self.data.__setitem__(key, value)

    def patch_namespaced_pod(self, name: str, namespace: str, patch: dict[str, Any], **_: Any) -> None:
        self.pod_labels.setdefault(name, {}).update((patch.get("metadata") or {}).get("labels") or {})

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.deployments[name]["spec"]["replicas"] = replicas

    def apply(self, manifest: dict[str, Any]) -> str:
        name = manifest["metadata"]["name"]
        live = self.deployments.get(name)
        if live is None:
            self.deployments[name] = copy.deepcopy(manifest)
            return "created"
        merged = {**copy.deepcopy(manifest), "spec": {**live["spec"], **copy.deepcopy(manifest["spec"])}}
        changed = json.dumps(merged, sort_keys=True) != json.dumps(live, sort_keys=True)
        self.deployments[name] = merged
        return "updated" if changed else "unchanged"

    def delete_owned_deployment(self, namespace: str, name: str, claim: dict[str, Any]) -> str:
        return "deleted" if self.deployments.pop(name, None) is not None else "absent"

    def remove_routedmodel_annotation(self, namespace: str, name: str, key: str) -> None:
        self.annotations.pop(key, None)

    def post_event(self, about: Any, *, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(reason)

    # -- what a run reads
    def pods(self) -> tuple[dict[str, Any], ...]:
        """Each Deployment's pods, named after its ReplicaSet (its name and image), all ready."""
        out = []
        for name, deployment in sorted(self.deployments.items()):
            template = deployment["spec"]["template"]
            rs = f"{name}-{zlib.crc32(str(runtime_image(deployment)).encode()) % 10**6}"
            for i in range(int(deployment["spec"].get("replicas", 1))):
                pod = f"{rs}-{i}"
                labels = {**template["metadata"]["labels"], **self.pod_labels.get(pod, {})}
                out.append({"metadata": {"name": pod, "labels": labels, "ownerReferences": [{"name": rs}]},
                            "status": {"conditions": [{"type": "Ready", "status": "True"}]}})  # fmt: skip
        return tuple(out)

    def world(self, now: float, **fields: Any) -> World:
        meta = {**BODY_META, "annotations": dict(self.annotations)}
        body = {"metadata": meta, "spec": self.spec.model_dump(mode="json", by_alias=True), "status": self.status}
        stable, canary = self.deployments[NAME], self.deployments.get(CANARY)
        return World(now=now, subject=Subject.from_body(body), spec=self.spec, pods=self.pods(),
                     workload=Workload.from_deployment(stable).with_canary(canary), canary=canary,
                     configmap={"data": dict(self.data)}, temperature=float(self.data["routing_temperature"]),
                     **fields)  # fmt: skip

    def create_update_pass(self) -> None:
        """The handler's pass on a spec edit: the owned objects brought to the spec."""
        actions = plan_owned(self.world(0.0), self.spec)
        for write in actions.writes:
            if isinstance(write, ApplyObject) and write.manifest["kind"] == "Deployment":
                self.apply(write.manifest)

    def run(self, now: float, *, replicas: int = 4, **fields: Any) -> None:
        world = self.world(now, **fields)
        fresh = {"MetricsAvailable": Verdict("True", "MetricsFresh", "m")}
        decision = Decision(0.8, replicas, "steady", {}, fresh, operating_temperature=0.8)
        actions = plan_actions(world, decision, self.spec, now=now)
        outcome = apply(self, world.subject.ref, actions)  # type: ignore[arg-type]
        assert outcome.error is None
        self.status = status_patch(settle(world, decision, actions, outcome).status)

    def rollout(self) -> dict[str, Any]:
        return dict(self.status.get("rollout") or {})

    def replicas(self, name: str) -> int | None:
        deployment = self.deployments.get(name)
        return None if deployment is None else int(deployment["spec"]["replicas"])

    def canary_pods(self) -> list[str]:
        return [p["metadata"]["name"] for p in self.pods() if p["metadata"]["labels"].get("thermostat.dev/track")
                == "canary"]  # fmt: skip


def edited(cluster: Cluster, image: str = NEW, *, rollout: bool = True) -> None:
    cluster.spec = spec(image, rollout=rollout)
    cluster.create_update_pass()


def test_a_new_image_runs_on_a_canary_deployment_and_the_stable_one_keeps_its_template() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    before = json.dumps(cluster.deployments[NAME], sort_keys=True)
    edited(cluster)
    cluster.run(1015.0)
    assert cluster.rollout()["phase"] == "Progressing"
    assert runtime_image(cluster.deployments[NAME]) == OLD
    assert runtime_image(cluster.deployments[CANARY]) == NEW
    assert (cluster.replicas(NAME), cluster.replicas(CANARY)) == (3, 1)  # 25 % of the law's 4
    assert len(cluster.canary_pods()) == 1
    assert cluster.deployments[NAME]["spec"]["template"] == json.loads(before)["spec"]["template"]
    assert "canary.routing_temperature" not in cluster.data  # the same temperature on both tracks


def test_a_harmful_router_is_rolled_back_and_the_stable_deployment_never_changes() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    edited(cluster)
    cluster.run(1015.0)
    template = json.dumps(cluster.deployments[NAME]["spec"]["template"], sort_keys=True)
    cluster.run(1075.0, tracks=HARMFUL)
    assert cluster.rollout()["phase"] == "RolledBack"
    assert CANARY not in cluster.deployments
    assert cluster.replicas(NAME) == 4  # the law's total, all stable again
    assert json.dumps(cluster.deployments[NAME]["spec"]["template"], sort_keys=True) == template
    assert {"RolloutRolledBack", "CanaryDeploymentDeleted"} <= set(cluster.events)
    edited(cluster)  # the handler runs again on any edit: the rejected image stays off the stable Deployment
    cluster.run(1090.0)
    assert runtime_image(cluster.deployments[NAME]) == OLD
    assert CANARY not in cluster.deployments


def test_a_good_router_is_promoted_step_by_step() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    edited(cluster)
    cluster.run(1015.0)
    sizes = [(cluster.replicas(NAME), cluster.replicas(CANARY))]
    cluster.run(1075.0, tracks=GOOD)
    sizes.append((cluster.replicas(NAME), cluster.replicas(CANARY)))
    cluster.run(1135.0, tracks=GOOD)
    assert sizes == [(3, 1), (2, 2)]
    assert cluster.rollout()["phase"] == "Promoted"
    assert runtime_image(cluster.deployments[NAME]) == NEW
    assert CANARY not in cluster.deployments
    assert cluster.replicas(NAME) == 4
    assert cluster.rollout()["stableRouter"] == NEW


def test_the_law_scales_the_total_during_a_router_rollout() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    edited(cluster)
    cluster.run(1015.0)
    cluster.run(1030.0, replicas=8)
    assert (cluster.replicas(NAME), cluster.replicas(CANARY)) == (6, 2)  # 25 % of 8
    cluster.run(1045.0, replicas=8)  # no external change seen: the watch counts both Deployments
    assert "ReplicasChangedExternally" not in cluster.events


def test_low_traffic_never_promotes_a_router() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    edited(cluster)
    cluster.run(1015.0)
    for now in (1075.0, 1135.0, 1195.0, 1255.0):
        cluster.run(now, tracks=LOW)
    assert cluster.rollout()["phase"] == "Paused"
    assert runtime_image(cluster.deployments[NAME]) == OLD


def test_a_manual_abort_removes_the_canary_deployment_at_once() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    edited(cluster)
    cluster.run(1015.0)
    cluster.annotations["thermostat.dev/rollout"] = "abort"
    cluster.run(1020.0)
    assert CANARY not in cluster.deployments
    assert (cluster.rollout()["phase"], cluster.replicas(NAME)) == ("RolledBack", 4)


def test_one_replica_pauses_a_router_rollout_without_a_canary_deployment() -> None:
    cluster = Cluster(replicas=1)
    cluster.run(1000.0, replicas=1)
    edited(cluster)
    cluster.run(1015.0, replicas=1)
    assert cluster.rollout()["pauseReason"] == "PausedTooFewReplicas"
    assert CANARY not in cluster.deployments
    assert runtime_image(cluster.deployments[NAME]) == OLD


def test_without_spec_rollout_a_new_image_goes_to_the_stable_deployment_at_once() -> None:
    cluster = Cluster()
    cluster.spec = spec(OLD, rollout=False)
    cluster.run(1000.0)
    edited(cluster, rollout=False)
    cluster.run(1015.0)
    assert runtime_image(cluster.deployments[NAME]) == NEW
    assert CANARY not in cluster.deployments


def test_unsetting_spec_rollout_mid_rollout_removes_the_canary_deployment() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    edited(cluster)
    cluster.run(1015.0)
    edited(cluster, rollout=False)
    cluster.run(1030.0)
    assert CANARY not in cluster.deployments
    assert runtime_image(cluster.deployments[NAME]) == NEW
    assert cluster.replicas(NAME) == 4


def test_the_canary_pods_are_never_relabelled_stable() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    edited(cluster)
    cluster.run(1015.0)
    cluster.run(1030.0)
    assert len(cluster.canary_pods()) == 1
    assert not any(cluster.pod_labels.values())  # no pod relabelled: each track is its Deployment's


def test_with_target_ref_the_rollout_condition_says_a_router_change_is_not_staged() -> None:
    from tests.unit.test_reconcile_policies import DROP_IN, make_spec, world

    drop_in = make_spec(**DROP_IN, rollout={"steps": [50]})
    fresh = {"MetricsAvailable": Verdict("True", "MetricsFresh", "m")}
    decision = Decision(0.8, 2, "steady", {}, fresh, operating_temperature=0.8)
    actions = plan_actions(world(drop_in), decision, drop_in, now=0.0)
    message = actions.verdicts["Rollout"].message
    assert "only temperature changes are staged" in message
    assert not [w for w in actions.writes if isinstance(w, ApplyObject)]


def test_after_a_rollback_another_image_is_staged_again() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    edited(cluster)
    cluster.run(1015.0)
    cluster.run(1075.0, tracks=HARMFUL)
    assert cluster.rollout()["rejectedRouter"] == NEW
    edited(cluster, "thermostat/runtime:3")
    cluster.run(1090.0)
    assert cluster.rollout()["phase"] == "Progressing"
    assert runtime_image(cluster.deployments[CANARY]) == "thermostat/runtime:3"
    assert runtime_image(cluster.deployments[NAME]) == OLD


def test_explain_tells_a_router_rollout() -> None:
    from rich.console import Console

    from thermostat.status import parse_status
    from thermostat.status.explain import explain

    cluster = Cluster()
    cluster.run(1000.0)
    edited(cluster)
    cluster.run(1015.0)
    cluster.run(1075.0, tracks=HARMFUL)
    console = Console(width=200, record=True)
    with console.capture() as captured:
        console.print(explain(parse_status(cluster.status), name=NAME, namespace=NAMESPACE, now=1080.0))
    prose = captured.get()
    assert f"Rollout of router {NEW} (stable {OLD}): RolledBack" in prose
    assert "Rollout RolledBack: both tracks at temperature 0.80" in prose
    assert f"router {OLD} → {NEW}: canary Deployment with 25% of the replicas" in prose


def test_a_deployment_named_like_the_canary_but_not_ours_is_never_deleted() -> None:
    from unittest.mock import MagicMock

    from thermostat.kube import ForeignObjectError
    from thermostat.kube.client import Kube

    owner = Owner.from_body({"metadata": BODY_META})
    claim = render_deployment(owner, spec(NEW), replicas=1)["metadata"]
    kube = Kube.__new__(Kube)
    kube.apps = MagicMock()
    users = {"metadata": {"name": CANARY, "annotations": {}, "ownerReferences": []}}
    kube.read = lambda kind, namespace, name: users  # type: ignore[method-assign]
    with pytest.raises(ForeignObjectError, match="never removes an object it did not create"):
        kube.delete_owned_deployment(NAMESPACE, CANARY, claim)
    kube.apps.delete_namespaced_deployment.assert_not_called()
    ours = {"metadata": {"name": CANARY, "annotations": dict(claim["annotations"])}}
    kube.read = lambda kind, namespace, name: ours  # type: ignore[method-assign]
    assert kube.delete_owned_deployment(NAMESPACE, CANARY, claim) == "deleted"
    kube.apps.delete_namespaced_deployment.assert_called_once()
