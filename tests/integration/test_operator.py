"""The operator's closed loop: the real operator process, the emulated API server, a real Prometheus.

Each scenario starts its own API server, Prometheus and operator; a load driver feeds the runtime
series Prometheus scrapes, as runtime pods under that load would. Control period 1 s.
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_support import (
    NAME,
    NAMESPACE,
    Cluster,
    EmulatedApi,
    LoadDriver,
    OperatorProcess,
    SeriesExporter,
    wait_until,
)
from rbac_support import OPERATOR_USER, operator_within_table

from thermostat_stack.promserver import PrometheusServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

OWNED = ("ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Service", "PodDisruptionBudget", "Deployment")
ACTUATIONS = ("RoutingTemperatureChanged", "ReplicasChanged")


def chat_spec(**overrides: Any) -> dict[str, Any]:
    """A RoutedModel whose SLO (p95 of request latency ≤ 10 s) a 4 s steady load meets and a 30 s burst misses."""
    spec: dict[str, Any] = {
        "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}},
        "slo": {"targetSeconds": 10, "windowSeconds": 15},
        "replicas": {"min": 1, "max": 3},
        "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10},
        "quality": {"minRoutingTemperature": 0.3},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def operator(
    emulated_api: EmulatedApi, operator_kubeconfig: Path, prometheus: PrometheusServer, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator as the chart's ServiceAccount; afterwards, none of its requests fell outside the table."""
    with operator_within_table(emulated_api, operator_kubeconfig, prometheus.url, tmp_path / "operator.log") as process:
        yield process


def ready(cluster: Cluster) -> bool:
    return cluster.condition("Ready").get("status") == "True"


def settle_steady(cluster: Cluster, load: LoadDriver) -> None:
    """Light load within the SLO until the law has fresh metrics and the knobs rest."""
    load.set(rate=0.5, latency_s=4.0)
    wait_until(
        lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=60, what="fresh metrics"
    )


def test_create_makes_owned_objects_ready_and_delete_removes_them(cluster: Cluster, operator: OperatorProcess) -> None:
    created = cluster.create_routedmodel(chat_spec())
    uid = created["metadata"]["uid"]
    names = {"ServiceAccount": f"{NAME}-runtime", "Role": f"{NAME}-routing-reader",
             "RoleBinding": f"{NAME}-routing-reader", "ConfigMap": f"{NAME}-routing"}  # fmt: skip
    for kind in OWNED:
        obj = wait_until(
            lambda kind=kind: cluster.kube.read(kind, NAMESPACE, names.get(kind, NAME)), timeout_s=60, what=kind
        )
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("RoutedModel", NAME, uid, True)
    assert cluster.temperature() == "1.0"
    wait_until(lambda: ready(cluster), timeout_s=60, what="Ready=True")
    assert cluster.condition("Ready")["reason"] == "Serving"
    cluster.kube.custom.delete_namespaced_custom_object("thermostat.dev", "v1alpha1", NAMESPACE, "routedmodels", NAME)
    for kind in OWNED:
        wait_until(
            lambda kind=kind: cluster.kube.read(kind, NAMESPACE, names.get(kind, NAME)) is None,
            timeout_s=30,
            what=f"{kind} deleted with its owner",
        )


def test_latency_past_the_slo_drops_temperature_then_adds_replicas(
    cluster: Cluster, operator: OperatorProcess, load: LoadDriver
) -> None:
    cluster.create_routedmodel(chat_spec())
    settle_steady(cluster, load)
    assert cluster.replicas() == 1, cluster.status()["decisions"]
    load.set(rate=6.0, latency_s=30.0)  # a burst: p95 three times the SLO
    wait_until(lambda: cluster.condition("SLOMet").get("status") == "False", timeout_s=60, what="SLOMet=False")
    try:
        wait_until(lambda: float(cluster.temperature() or 1) < 1.0, timeout_s=60, what="temperature below 1")
        wait_until(lambda: (cluster.replicas() or 0) > 1, timeout_s=60, what="more replicas")
    finally:
        print(
            [d["reason"] for d in cluster.status()["decisions"]],
            cluster.status()["observation"],
            cluster.status()["conditions"],
        )
    temperature_events = cluster.events("RoutingTemperatureChanged")
    replica_events = cluster.events("ReplicasChanged")
    assert temperature_events
    assert replica_events
    assert "SLO" in replica_events[0]["message"]
    # The fast knob moved no later than the slow one: the first cooler decision precedes or is the first scale-up.
    decisions = cluster.status()["decisions"]
    first_cooler = next(i for i, d in enumerate(decisions) if d["applied"] and d["routingTemperature"] < 1.0)
    first_more = next(i for i, d in enumerate(decisions) if d["applied"] and d["replicas"] > 1)
    assert first_cooler <= first_more


def test_no_metrics_at_all_holds_and_never_scales_down(
    cluster: Cluster,
    operator: OperatorProcess,
    load: LoadDriver,
    prometheus: PrometheusServer,
    runtime_exporter: SeriesExporter,
) -> None:
    cluster.create_routedmodel(chat_spec())
    settle_steady(cluster, load)
    load.set(rate=6.0, latency_s=30.0)
    wait_until(lambda: (cluster.replicas() or 0) > 1, timeout_s=60, what="scale-up under load")
    # Prometheus down and the pod's own /metrics unreachable: no direct scrape either (that one is
    # tests/integration/test_fault_prometheus.py).
    runtime_exporter.close()
    prometheus.stop()
    metrics = wait_until(
        lambda: (c := cluster.condition("MetricsAvailable")).get("status") == "False" and c,
        timeout_s=30,
        what="MetricsAvailable=False",
    )
    assert "SourceUnavailable" in metrics["message"]
    held_at = (cluster.replicas(), cluster.temperature())
    seen = []
    for _ in range(12):  # a dozen control periods without metrics
        seen.append(cluster.replicas() or 0)
        time.sleep(0.5)
    assert min(seen) >= (held_at[0] or 0)
    assert cluster.temperature() == held_at[1]
    last = cluster.status()["decisions"][-1]
    assert "hold" in last["reason"]
    assert cluster.condition("Ready")["status"] == "True"  # still serving, just not steering


WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def test_recommend_on_a_target_deployment_writes_nothing_but_status_and_events(
    emulated_api: EmulatedApi, cluster: Cluster, operator: OperatorProcess, load: LoadDriver
) -> None:
    cluster.create_deployment("vllm")
    spec = chat_spec(mode="Recommend", targetRef={"name": "vllm"})
    del spec["model"]
    cluster.create_routedmodel(spec)
    settle_steady(cluster, load)
    load.set(rate=6.0, latency_s=30.0)
    recommended = wait_until(
        lambda: (r := cluster.status().get("recommended") or {}).get("replicas", 1) > 1 and r,
        timeout_s=60,
        what="a recommendation to scale up",
    )
    assert recommended["routingTemperature"] <= 1.0
    assert all(not d["applied"] for d in cluster.status()["decisions"])
    ours = [r for r in emulated_api.audit.entries(OPERATOR_USER) if r["verb"] in WRITE_VERBS]
    status_writes = [r for r in ours if (r["resource"], r["subresource"]) == ("routedmodels", "status")]
    assert status_writes, "no status write seen: does the operator still run as the chart's ServiceAccount?"
    # Kopf's own bookkeeping lives in annotations of the RoutedModel itself; anything else is a write.
    others = [r for r in ours if r["resource"] not in ("routedmodels", "events")]
    assert others == [], others


SCALED_OBJECT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "scope": "Namespaced",
        "names": {
            "plural": "scaledobjects",
            "singular": "scaledobject",
            "kind": "ScaledObject",
            "listKind": "ScaledObjectList",
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def test_another_scaler_raises_conflict_and_replicas_are_left_alone(
    cluster: Cluster, operator: OperatorProcess, load: LoadDriver
) -> None:
    cluster.create_routedmodel(chat_spec())
    settle_steady(cluster, load)
    from kubernetes.client import ApiextensionsV1Api

    ApiextensionsV1Api(cluster.kube.api_client).create_custom_resource_definition(
        SCALED_OBJECT_CRD, _preload_content=False
    )
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "chat-keda"},
              "spec": {"scaleTargetRef": {"name": NAME}, "triggers": []}}  # fmt: skip
    wait_until(lambda: _try_create(cluster, scaled), timeout_s=30, what="the ScaledObject CRD to be served")
    conflict = wait_until(
        lambda: (c := cluster.condition("Conflict")).get("status") == "True" and c, timeout_s=30, what="Conflict=True"
    )
    assert "ScaledObject/chat-keda" in conflict["message"]
    load.set(rate=6.0, latency_s=30.0)
    wait_until(lambda: float(cluster.temperature() or 1) < 1.0, timeout_s=60, what="temperature still steered")
    wait_until(lambda: (cluster.status().get("recommended") or {}).get("replicas", 1) > 1, timeout_s=60, what="advice")
    assert cluster.replicas() == 1
    assert not cluster.events("ReplicasChanged")


def _try_create(cluster: Cluster, obj: dict[str, Any]) -> bool:
    from kubernetes.client import ApiException

    try:
        cluster.kube.custom.create_namespaced_custom_object(
            "keda.sh", "v1alpha1", NAMESPACE, "scaledobjects", obj, _preload_content=False
        )
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_invalid_specs_are_refused_or_reported(cluster: Cluster, operator: OperatorProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: thermostat.dev/v1alpha1\nkind: RoutedModel\nmetadata: {name: bad, namespace: it}\n"
        "spec: {model: {image: img}, slo: {targetSeconds: 1}, replicas: {min: 5, max: 2}}\n"
    )
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", str(manifest)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "replicas.min" in result.stderr
    # Valid for the schema, not for the operator: a memory quantity that is not one.
    cluster.create_routedmodel(
        chat_spec(model={"image": "img", "resources": {"gpus": 0, "memory": "lots"}}), name="odd"
    )
    ready_condition = wait_until(
        lambda: (c := cluster.condition("Ready", name="odd")).get("reason") == "InvalidSpec" and c,
        timeout_s=30,
        what="Ready=False InvalidSpec",
    )
    assert ready_condition["status"] == "False"
    assert "spec.model.resources.memory" in ready_condition["message"]
    assert cluster.kube.read("Deployment", NAMESPACE, "odd") is None


def test_operator_restart_resumes_without_spurious_changes(
    cluster: Cluster, operator: OperatorProcess, load: LoadDriver
) -> None:
    cluster.create_routedmodel(chat_spec())
    settle_steady(cluster, load)
    load.set(rate=6.0, latency_s=30.0)
    wait_until(lambda: (cluster.replicas() or 0) > 1, timeout_s=60, what="scale-up")
    # Hold the load where it is until the knobs rest: no actuation Event for three seconds.
    wait_until(lambda: _quiet_for(cluster, 3.0), timeout_s=90, what="the loop to settle")
    before = (cluster.replicas(), cluster.temperature(), len(cluster.events()))
    operator.restart()
    observed_at = cluster.status()["observation"]["time"]
    wait_until(
        lambda: cluster.status()["observation"]["time"] > observed_at,
        timeout_s=60,
        what="a run of the restarted operator",
    )
    time.sleep(3)  # a few more periods of the restarted operator
    actuations = [e for e in cluster.events() if e["reason"] in (*ACTUATIONS, "ReplicasChangedExternally", "Applied")]
    after = (cluster.replicas(), cluster.temperature())
    assert after == before[:2]
    assert len(cluster.events()) == before[2], [e["reason"] for e in actuations]


def _quiet_for(cluster: Cluster, seconds: float) -> bool:
    count = len([e for e in cluster.events() if e["reason"] in ACTUATIONS])
    time.sleep(seconds)
    return count == len([e for e in cluster.events() if e["reason"] in ACTUATIONS])


def test_a_tool_resetting_replicas_is_a_conflict(cluster: Cluster, operator: OperatorProcess, load: LoadDriver) -> None:
    cluster.create_routedmodel(chat_spec())
    settle_steady(cluster, load)
    stop = threading.Event()

    def self_heal() -> None:  # what Argo CD's self-heal does with a committed `replicas: 1`
        while not stop.wait(0.3):
            if cluster.replicas() != 1:
                cluster.kube.scale_deployment(NAMESPACE, NAME, 1)

    gitops = threading.Thread(target=self_heal, daemon=True)
    gitops.start()
    try:
        load.set(rate=6.0, latency_s=30.0)
        conflict = wait_until(
            lambda: (c := cluster.condition("Conflict")).get("status") == "True" and c,
            timeout_s=90,
            what="Conflict=True",
        )
        assert conflict["reason"] == "ReplicasOverridden"
        changes = len(cluster.events("ReplicasChanged"))
        time.sleep(3)  # three more periods under load
        assert len(cluster.events("ReplicasChanged")) == changes
        assert cluster.replicas() == 1
    finally:
        stop.set()
        gitops.join(timeout=5)


def test_spec_edits_reach_the_deployment_and_the_operator_reports_on_itself(
    operator_kubeconfig: Path, prometheus: PrometheusServer, cluster: Cluster, load: LoadDriver, tmp_path: Path
) -> None:
    metrics_port, liveness_port = free_port(), free_port()
    process = OperatorProcess(
        operator_kubeconfig,
        prometheus.url,
        tmp_path / "operator.log",
        THERMOSTAT_METRICS_PORT=str(metrics_port),
        THERMOSTAT_METRICS_HOST="127.0.0.1",
        THERMOSTAT_LIVENESS_ENDPOINT=f"http://127.0.0.1:{liveness_port}/healthz",
    )
    try:
        cluster.create_routedmodel(chat_spec())
        settle_steady(cluster, load)
        patch = {"spec": {"model": {"image": "thermostat/runtime:v2", "resources": {"gpus": 0}}}}
        cluster.kube.custom.patch_namespaced_custom_object(
            "thermostat.dev", "v1alpha1", NAMESPACE, "routedmodels", NAME, patch,
            _content_type="application/merge-patch+json",
        )  # fmt: skip
        image = wait_until(
            lambda: (d := cluster.kube.read("Deployment", NAMESPACE, NAME)) and
            d["spec"]["template"]["spec"]["containers"][0]["image"] == "thermostat/runtime:v2",
            timeout_s=30, what="the new image in the Deployment",
        )  # fmt: skip
        assert image
        page = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert (
            'thermostat_operator_decisions_total{held="false",mode="Enforce",namespace="it",routedmodel="chat"}' in page
        )
        assert "thermostat_operator_loop_duration_seconds_count" in page
        with urllib.request.urlopen(f"http://127.0.0.1:{liveness_port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        process.stop()
        print(process.log_tail())
