"""The staged rollout through the real reconcile (plan_actions → apply → settle → status), run after run.

A small in-memory cluster keeps the routing ConfigMap, the pods' labels and the RoutedModel's
status between runs; each run starts from the status the previous one wrote (what a restarted
operator would read). A pod serves the key of its track, as the runtime does
(``thermostat_runtime.routing_config.track_value``).
"""

from __future__ import annotations

from typing import Any

import pytest

from thermostat.api import RoutedModelSpec
from thermostat.control import Decision
from thermostat.control.abtest import TrackSample
from thermostat.control.types import Verdict
from thermostat.metrics.tracks import TrackPair
from thermostat.reconcile import Subject, Workload, World, apply, plan_actions, settle
from thermostat.status import status_patch
from thermostat_runtime.routing_config import track_value

pytestmark = pytest.mark.fast
NAMESPACE, NAME, PODS = "prod", "chat", ("chat-a", "chat-b", "chat-c", "chat-d")
SPEC = RoutedModelSpec.model_validate({
    "model": {"image": "thermostat/runtime:1"}, "slo": {"targetSeconds": 1.0}, "replicas": {"min": 1, "max": 6},
    "rollout": {"steps": [25, 50], "analysis": {"intervalSeconds": 60, "minRequests": 100}},
})  # fmt: skip


def stable_sample(requests: float = 1000) -> TrackSample:
    return TrackSample(requests=requests, within_slo=requests - 10, errors=0, temperature=1.0)


def canary_sample(kl: float, requests: float = 1000) -> TrackSample:
    tokens = 20000.0
    return TrackSample(requests=requests, within_slo=requests - 10, errors=0, shadow_tokens=tokens,
                       shadow_kl_nats=kl * tokens, shadow_kl_sq_nats=2 * kl * kl * tokens, temperature=0.6)  # fmt: skip


GOOD = TrackPair(stable_sample(), canary_sample(0.004), slo_exact=True)
HARMFUL = TrackPair(stable_sample(), canary_sample(0.05), slo_exact=True)
LOW = TrackPair(stable_sample(30), canary_sample(0.004, requests=10), slo_exact=True)


class Cluster:
    """The objects a run reads and writes, kept between runs; implements the writes ``apply`` makes."""

    def __init__(self) -> None:
        self.spec = SPEC
        self.data: dict[str, str] = {"routing_temperature": "1"}
        self.labels: dict[str, dict[str, str]] = {p: {"app": NAME} for p in PODS}
        self.status: dict[str, Any] = {}
        self.annotations: dict[str, str] = {}
        self.events: list[str] = []
        self.core = self  # set_track patches pods through kube.core

    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        for key, value in patch["data"].items():
            self.data.pop(key, None) if value is None else self.data.__setitem__(key, value)

    def patch_namespaced_pod(self, name: str, namespace: str, patch: dict[str, Any], **_: Any) -> None:
        self.labels[name].update(patch["metadata"]["labels"])

    def remove_routedmodel_annotation(self, namespace: str, name: str, key: str) -> None:
        self.annotations.pop(key, None)

    def post_event(self, about: Any, *, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(reason)

    def served(self) -> dict[str, float]:
        """Each pod's temperature, as its runtime picks the key of its track."""
        out = {}
        for pod, labels in self.labels.items():
            chosen = track_value(self.data, labels.get("thermostat.dev/track", "stable"))
            assert chosen is not None
            out[pod] = float(chosen[1])
        return out

    def on_track(self, track: str) -> list[str]:
        return [p for p, labels in self.labels.items() if labels.get("thermostat.dev/track", "stable") == track]

    def run(self, now: float, *, law: float = 0.6, op: float = 0.6, **fields: Any) -> None:
        meta = {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": "u",
            "generation": 1,
            "annotations": dict(self.annotations),
        }
        body = {"metadata": meta, "spec": self.spec.model_dump(mode="json", by_alias=True), "status": self.status}
        pods = tuple({"metadata": {"name": p, "labels": dict(labels)},
                      "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                     for p, labels in self.labels.items())  # fmt: skip
        world = World(now=now, subject=Subject.from_body(body), spec=self.spec, pods=pods,
                      workload=Workload(NAME, 4, 4, {"app": NAME}, "runner"), configmap={"data": dict(self.data)},
                      temperature=float(self.data["routing_temperature"]), **fields)  # fmt: skip
        fresh = {"MetricsAvailable": Verdict("True", "MetricsFresh", "m")}
        decision = Decision(law, 4, "steady", {}, fresh, operating_temperature=op)
        actions = plan_actions(world, decision, self.spec, now=now)
        outcome = apply(self, world.subject.ref, actions)  # type: ignore[arg-type]
        assert outcome.error is None
        self.settled = settle(world, decision, actions, outcome)
        self.status = status_patch(self.settled.status)

    def rollout(self) -> dict[str, Any]:
        return dict(self.status.get("rollout") or {})


def test_a_harmful_candidate_is_rolled_back_at_the_first_analysis_and_stable_pods_never_change() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    assert cluster.rollout()["phase"] == "Progressing"
    assert cluster.on_track("canary") == ["chat-a"]
    stable_seen = []
    for now in (1015.0, 1030.0, 1045.0, 1060.0):
        cluster.run(now, tracks=HARMFUL if now >= 1060 else None)
        stable_seen += [cluster.served()[p] for p in cluster.on_track("stable")]
    assert set(stable_seen) == {1.0}
    assert cluster.rollout()["phase"] == "RolledBack"
    assert cluster.on_track("canary") == []
    assert set(cluster.served().values()) == {1.0}
    assert "canary.routing_temperature" not in cluster.data
    assert "RolloutRolledBack" in cluster.events
    rollout = next(c for c in cluster.status["conditions"] if c["type"] == "Rollout")
    assert (rollout["status"], rollout["reason"]) == ("False", "RolledBack")


def test_a_good_candidate_is_promoted_step_by_step() -> None:
    cluster, canary_counts = Cluster(), []
    cluster.run(1000.0)
    for now in (1060.0, 1120.0):
        canary_counts.append(len(cluster.on_track("canary")))
        cluster.run(now, tracks=GOOD)
    assert canary_counts == [1, 2]  # 25 % then 50 % of four pods
    assert cluster.rollout()["phase"] == "Promoted"
    assert set(cluster.served().values()) == {0.6}
    assert [h["action"] for h in cluster.rollout()["history"]] == ["Started", "Advanced", "Promoted"]
    assert cluster.rollout()["lastAnalysis"]["canary"]["qualityLossInterval"]


def test_low_traffic_is_inconclusive_and_never_promotes() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    for now in (1060.0, 1120.0, 1180.0, 1240.0):
        cluster.run(now, tracks=LOW)
        assert cluster.rollout()["phase"] != "Promoted"
    assert cluster.rollout()["lastAnalysis"]["result"] == "Inconclusive"
    assert cluster.rollout()["phase"] == "Paused"
    assert cluster.on_track("stable")
    assert {cluster.served()[p] for p in cluster.on_track("stable")} == {1.0}


def test_a_metrics_outage_during_analysis_pauses_and_never_promotes() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    cluster.run(1060.0, tracks_missing="SourceUnavailable: Prometheus unreachable")
    assert cluster.rollout()["phase"] == "Paused"
    assert "RolloutPaused" in cluster.events
    cluster.run(1075.0, tracks=GOOD)  # back: the analysis counts again
    assert cluster.rollout()["phase"] == "Progressing"
    assert cluster.rollout()["step"] == 2


def test_a_manual_abort_restores_the_stable_setting_at_once() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    cluster.annotations["thermostat.dev/rollout"] = "abort"
    cluster.run(1005.0)
    assert set(cluster.served().values()) == {1.0}
    assert cluster.rollout()["phase"] == "RolledBack"
    assert cluster.annotations == {}  # the one-shot command is consumed
    assert "RolloutAborted" in cluster.events


def test_a_burst_during_a_rollout_still_lowers_every_pod() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    cluster.run(1015.0, law=0.4, op=0.6)
    assert set(cluster.served().values()) == {0.4}
    cluster.run(1030.0, law=0.6, op=0.6)
    assert {cluster.served()[p] for p in cluster.on_track("stable")} == {1.0}
    assert {cluster.served()[p] for p in cluster.on_track("canary")} == {0.6}


def test_unsetting_spec_rollout_mid_rollout_returns_every_pod_to_stable() -> None:
    cluster = Cluster()
    cluster.run(1000.0)
    assert cluster.on_track("canary")
    cluster.spec = SPEC.model_copy(update={"rollout": None})
    cluster.run(1015.0)
    assert cluster.on_track("canary") == []
    assert "canary.routing_temperature" not in cluster.data
    assert "rollout" not in cluster.status or cluster.status["rollout"] is None
    condition = next(c for c in cluster.status["conditions"] if c["type"] == "Rollout")
    assert condition["reason"] == "NoRollout"
