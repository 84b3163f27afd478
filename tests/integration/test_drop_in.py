"""Drop-in on a Deployment the user already runs: the real operator (as the chart's ServiceAccount), the
emulated API server, a real Prometheus, load that answers to what the operator sets.

The user's Deployment selects its pods with ``matchExpressions``, its routing ConfigMap belongs to
another object of the user's; the operator scales the one and steers the temperature through the
other, marks only the target's pods for removal, and when the RoutedModel is deleted both are
back as they were, byte for byte except what the API server itself writes (``resourceVersion``;
``generation``, which every scale bumps; ``managedFields``; the Deployment's ``status``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_support import NAME, NAMESPACE, Cluster, EmulatedApi, LoadDriver, OperatorProcess, wait_until
from rbac_support import OPERATOR_USER, operator_within_table

from thermostat_stack.promserver import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SERVER_FIELDS = ("resourceVersion", "generation", "managedFields")
SELECTOR = {
    "matchLabels": {"app": "vllm"},
    "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable"]}],
}


def drop_in_spec(**behavior: Any) -> dict[str, Any]:
    """A RoutedModel driving the user's ``vllm`` Deployment through the user's ``vllm-routing`` ConfigMap."""
    return {
        "targetRef": {"name": "vllm", "routingConfigMap": "vllm-routing"},
        "slo": {"targetSeconds": 10, "windowSeconds": 15},
        "replicas": {"min": 1, "max": 3},
        "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10,
                     "scaleDown": {"stabilizationWindowSeconds": 0, "maxStepReplicas": 2}, **behavior},
        "quality": {"minRoutingTemperature": 0.3},
    }  # fmt: skip


@pytest.fixture
def operator(
    emulated_api: EmulatedApi, operator_kubeconfig: Path, prometheus: PrometheusServer, tmp_path: Path
) -> Iterator[OperatorProcess]:
    with operator_within_table(emulated_api, operator_kubeconfig, prometheus.url, tmp_path / "operator.log") as process:
        yield process


def create_users_objects(cluster: Cluster) -> None:
    """What the user runs before Thermostat: a Deployment selected by expressions, its routing ConfigMap
    (owned by another object of theirs), and a canary pod the Deployment does not select."""
    core, apps = cluster.kube.core, cluster.kube.apps
    parent = json.loads(core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "release"}},
                                                          _preload_content=False).data)  # fmt: skip
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "release", "uid": parent["metadata"]["uid"]}
    configmap = {
        "metadata": {"name": "vllm-routing", "labels": {"team": "ml"}, "annotations": {"ticket": "ML-42"},
                     "ownerReferences": [owner]},
        "data": {"routing_temperature": "1.0", "notes": "the user's own key"},
    }  # fmt: skip
    core.create_namespaced_config_map(NAMESPACE, configmap, _preload_content=False)
    template = {"metadata": {"labels": {"app": "vllm", "track": "stable"}},
                "spec": {"containers": [{"name": "server", "image": "vllm/vllm-openai:v0.6.0"}]}}  # fmt: skip
    deployment = {"metadata": {"name": "vllm", "labels": {"team": "ml"}, "annotations": {"ticket": "ML-42"}},
                  "spec": {"replicas": 1, "selector": SELECTOR, "template": template}}  # fmt: skip
    apps.create_namespaced_deployment(NAMESPACE, deployment, _preload_content=False)
    canary = {"metadata": {"name": "vllm-canary", "labels": {"app": "vllm", "track": "canary"}},
              "spec": {"containers": [{"name": "server", "image": "vllm/vllm-openai:v0.6.1"}]}}  # fmt: skip
    core.create_namespaced_pod(NAMESPACE, canary, _preload_content=False)


def comparable(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The object without what the API server itself writes."""
    obj = copy.deepcopy(obj or {})
    for key in SERVER_FIELDS:
        obj.get("metadata", {}).pop(key, None)
    obj.pop("status", None)
    return obj


def deletion_costs(cluster: Cluster) -> dict[str, str | None]:
    pods = json.loads(cluster.kube.core.list_namespaced_pod(NAMESPACE, _preload_content=False).data)["items"]
    return {p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(DELETION_COST) for p in pods}


def users_temperature(cluster: Cluster) -> float:
    configmap = cluster.kube.read("ConfigMap", NAMESPACE, "vllm-routing") or {}
    return float((configmap.get("data") or {}).get("routing_temperature", "nan"))


def replicas(cluster: Cluster) -> int:
    return int((cluster.kube.read("Deployment", NAMESPACE, "vllm") or {})["spec"]["replicas"])


def test_a_foreign_deployment_is_driven_end_to_end_and_given_back_intact(
    emulated_api: EmulatedApi, cluster: Cluster, operator: OperatorProcess, load: LoadDriver
) -> None:
    create_users_objects(cluster)
    wait_until(lambda: (d := cluster.kube.read("Deployment", NAMESPACE, "vllm")) and
               d.get("status", {}).get("readyReplicas") == 1, timeout_s=30, what="the user's pod ready")  # fmt: skip
    before = {kind: comparable(cluster.kube.read(kind, NAMESPACE, name))
              for kind, name in (("Deployment", "vllm"), ("ConfigMap", "vllm-routing"))}  # fmt: skip
    cluster.create_routedmodel(drop_in_spec())
    load.set(rate=0.5, latency_s=4.0)
    wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=60, what="metrics")
    configmap = cluster.kube.read("ConfigMap", NAMESPACE, "vllm-routing") or {}
    # The data-loss bug: an ownerReference to the RoutedModel here would collect the user's ConfigMap with it.
    assert configmap["metadata"]["ownerReferences"] == before["ConfigMap"]["metadata"]["ownerReferences"]
    assert configmap["metadata"]["annotations"]["thermostat.dev/managed-by"] == NAME
    assert configmap["metadata"]["labels"] == {"team": "ml"}
    role = cluster.kube.read("Role", NAMESPACE, f"{NAME}-routing-reader") or {}
    assert role["metadata"]["annotations"]["thermostat.dev/created-by"] == NAME  # created, so owned
    assert role["metadata"]["ownerReferences"][0]["name"] == NAME

    load.set(rate=6.0, latency_s=30.0)  # a burst: p95 three times the SLO
    wait_until(lambda: users_temperature(cluster) < 1.0, timeout_s=60, what="temperature through the user's ConfigMap")
    wait_until(lambda: replicas(cluster) > 1, timeout_s=60, what="the user's Deployment scaled up")
    load.set(rate=0.2, latency_s=1.0)  # far under the target: one replica is enough again
    wait_until(lambda: replicas(cluster) == 1, timeout_s=120, what="the user's Deployment scaled back to 1")
    assert deletion_costs(cluster)["vllm-canary"] is None, "a pod the target does not select was marked"
    marked = {e["path"].rsplit("/", 1)[-1] for e in emulated_api.audit.entries(OPERATOR_USER)
              if e["resource"] == "pods" and e["verb"] == "patch"}  # fmt: skip
    assert marked
    assert all(name.startswith("vllm-") and name != "vllm-canary" for name in marked), marked

    cluster.kube.custom.delete_namespaced_custom_object("thermostat.dev", "v1alpha1", NAMESPACE, "routedmodels", NAME)
    wait_until(lambda: cluster.kube.read_routedmodel(NAMESPACE, NAME) is None, timeout_s=30, what="RoutedModel gone")
    for kind, name in (("Deployment", "vllm"), ("ConfigMap", "vllm-routing")):
        assert comparable(cluster.kube.read(kind, NAMESPACE, name)) == before[kind], f"the user's {kind} changed"
    wait_until(lambda: cluster.kube.read("Role", NAMESPACE, f"{NAME}-routing-reader") is None, timeout_s=30,
               what="the Role it created collected with it")  # fmt: skip
    assert cluster.kube.read("ConfigMap", NAMESPACE, "release") is not None


def test_a_missing_target_is_target_not_found_and_nothing_is_created(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create_routedmodel(drop_in_spec())
    ready = wait_until(lambda: (c := cluster.condition("Ready")).get("reason") == "TargetNotFound" and c,
                       timeout_s=30, what="Ready=False TargetNotFound")  # fmt: skip
    assert ready["status"] == "False"
    assert f"{NAMESPACE}/vllm" in ready["message"]
    assert "spec.targetRef.name" in ready["message"]
    for kind, name in (("Role", f"{NAME}-routing-reader"), ("ConfigMap", "vllm-routing"), ("Deployment", "vllm")):
        assert cluster.kube.read(kind, NAMESPACE, name) is None, f"{kind} created for a missing target"


HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "vllm"},
    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
             "minReplicas": 1, "maxReplicas": 4},
}  # fmt: skip


def test_an_hpa_on_the_target_gets_the_replicas_and_the_operator_keeps_the_temperature(
    cluster: Cluster, operator: OperatorProcess, load: LoadDriver
) -> None:
    create_users_objects(cluster)
    cluster.kube.autoscaling.create_namespaced_horizontal_pod_autoscaler(NAMESPACE, HPA, _preload_content=False)
    cluster.create_routedmodel(drop_in_spec())
    conflict = wait_until(lambda: (c := cluster.condition("Conflict")).get("status") == "True" and c,
                          timeout_s=60, what="Conflict=True")  # fmt: skip
    assert conflict["reason"] == "OtherScaler"
    assert "HorizontalPodAutoscaler/vllm" in conflict["message"]
    (event,) = cluster.events("OtherScaler")
    assert "yields the replicas" in event["message"]
    load.set(rate=0.5, latency_s=4.0)
    wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=60, what="metrics")
    load.set(rate=6.0, latency_s=30.0)
    wait_until(lambda: users_temperature(cluster) < 1.0, timeout_s=60, what="temperature still steered")
    wait_until(lambda: (cluster.status().get("recommended") or {}).get("replicas", 1) > 1, timeout_s=60, what="advice")
    assert replicas(cluster) == 1
    assert not cluster.events("ReplicasChanged")
    assert len(cluster.events("OtherScaler")) == 1  # said once


@pytest.fixture
def hpa_denied_operator(
    emulated_api: EmulatedApi, operator_kubeconfig: Path, prometheus: PrometheusServer, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator on a cluster whose admin left HorizontalPodAutoscalers out of its ClusterRole."""
    from kubernetes.client import RbacAuthorizationV1Api

    rbac = RbacAuthorizationV1Api(Cluster(emulated_api.kubeconfig).kube.api_client)
    for role in json.loads(rbac.list_cluster_role(_preload_content=False).data)["items"]:
        rules = role.get("rules") or []
        kept = [r for r in rules if "horizontalpodautoscalers" not in r.get("resources", [])]
        if kept != rules:
            rbac.patch_cluster_role(role["metadata"]["name"], {"rules": kept}, _preload_content=False)
    process = OperatorProcess(operator_kubeconfig, prometheus.url, tmp_path / "operator.log")
    yield process
    process.stop()
    print(process.log_tail())


def test_a_403_on_listing_hpas_is_a_condition_and_the_loop_goes_on(
    emulated_api: EmulatedApi, cluster: Cluster, hpa_denied_operator: OperatorProcess, load: LoadDriver
) -> None:
    create_users_objects(cluster)
    cluster.create_routedmodel(drop_in_spec())
    load.set(rate=0.5, latency_s=4.0)
    conflict = wait_until(lambda: (c := cluster.condition("Conflict")).get("status") == "Unknown" and c,
                          timeout_s=60, what="Conflict=Unknown")  # fmt: skip
    assert conflict["reason"] == "ScalersUnknown"
    assert "HorizontalPodAutoscalers" in conflict["message"]
    assert "403" in conflict["message"]
    wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=60, what="metrics")
    load.set(rate=6.0, latency_s=30.0)
    wait_until(lambda: replicas(cluster) > 1, timeout_s=60, what="replicas still steered")
    refused = [e for e in emulated_api.audit.entries(OPERATOR_USER) if e["code"] == 403]
    assert refused
    assert {e["resource"] for e in refused} == {"horizontalpodautoscalers"}
    assert "control run of" not in hpa_denied_operator.log_tail(200_000)  # no failed run
