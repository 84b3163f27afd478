"""Least privilege, both ways: the operator, run as the chart's ServiceAccount against an API that
enforces RBAC, uses every entry of its declared permission table and nothing outside it.

One scenario walks every path that talks to the API: creating a RoutedModel (reads and creates of
each owned kind, the runtime pods' Role granted onward), Prometheus credentials from a Secret,
looking for other scalers, someone stripping the owned objects' labels and a spec edit restoring them
(patches of each kind), a scale-down (pods listed and the first to go marked, the scale subresource, Events),
and a router rollout aborted (its canary Deployment created, then deleted); the operator is peered as the
chart runs it (Kopf's peering object watched and its heartbeat written).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_support import NAME, NAMESPACE, Cluster, EmulatedApi, LoadDriver, OperatorProcess, wait_until
from rbac_support import OPERATOR_NAMESPACE, OPERATOR_USER, create_objects, never_exercised

from chart_support import RELEASE, crds, find, render
from thermostat.kube import inventory
from thermostat_stack.promserver import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]
OWNED = {"ServiceAccount": f"{NAME}-runtime", "Role": f"{NAME}-routing-reader",
         "RoleBinding": f"{NAME}-routing-reader", "ConfigMap": f"{NAME}-routing", "Service": NAME,
         "PodDisruptionBudget": NAME, "Deployment": NAME}  # fmt: skip


@pytest.fixture
def operator(
    emulated_api: EmulatedApi, operator_kubeconfig: Path, prometheus: PrometheusServer, tmp_path: Path
) -> Iterator[OperatorProcess]:
    # Peered as the chart runs it (its peering CRD and object installed): the peering entries get used.
    admin = Cluster(emulated_api.kubeconfig)
    peering_crds = [crd for crd in crds() if crd["spec"]["group"] == "kopf.dev"]
    create_objects(admin.kube, peering_crds)
    (peering,) = find(render({}, namespace=OPERATOR_NAMESPACE), "ClusterKopfPeering")
    admin.kube.custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering,
                                                   _preload_content=False)  # fmt: skip
    process = OperatorProcess(operator_kubeconfig, prometheus.url, tmp_path / "operator.log",
                              THERMOSTAT_PEERING=RELEASE, THERMOSTAT_PRIORITY_BY_START="true")  # fmt: skip
    yield process
    process.stop()
    print(process.log_tail())
    print("refused or outside the table:", emulated_api.audit.outside_table(OPERATOR_USER, inventory.table()))


def spec(replicas_min: int) -> dict[str, Any]:
    return {
        "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}},
        "slo": {"targetSeconds": 10, "windowSeconds": 15},
        "replicas": {"min": replicas_min, "max": 3},
        "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10,
                     "scaleDown": {"stabilizationWindowSeconds": 0, "maxStepReplicas": 2}},
        "metrics": {"prometheus": {"authSecretRef": {"name": "prometheus-token"}}},
    }  # fmt: skip


def strip_labels(cluster: Cluster) -> None:
    """What a careless person or tool does: the owned objects lose their labels."""
    for kind, name in OWNED.items():
        live = cluster.kube.read(kind, NAMESPACE, name) or {}
        labels = dict.fromkeys((live.get("metadata") or {}).get("labels") or {})
        cluster.kube.patch(kind, NAMESPACE, name, {"metadata": {"labels": labels}})


def test_the_operator_uses_its_whole_permission_table_and_nothing_else(
    emulated_api: EmulatedApi, operator: OperatorProcess, runtime_exporter: Any
) -> None:
    load = LoadDriver(runtime_exporter)
    load.start()
    try:
        _scenario(emulated_api, load)
    finally:
        load.stop()


def _scenario(emulated_api: EmulatedApi, load: LoadDriver) -> None:
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    token = base64.b64encode(b"unused-by-this-prometheus").decode()
    secret = {"metadata": {"name": "prometheus-token"}, "data": {"token": token}}
    cluster.kube.core.create_namespaced_secret(NAMESPACE, secret, _preload_content=False)
    cluster.create_routedmodel(spec(replicas_min=2))
    wait_until(lambda: cluster.condition("Ready").get("status") == "True", timeout_s=60, what="Ready=True")
    load.set(rate=0.2, latency_s=1.0)  # light load, far under the 10 s target: one replica is enough
    wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=60, what="metrics")
    strip_labels(cluster)
    patch = {"spec": {"replicas": {"min": 1, "max": 3}}}
    cluster.kube.custom.patch_namespaced_custom_object(
        "thermostat.dev", "v1alpha1", NAMESPACE, "routedmodels", NAME, patch,
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    # The law sizes the light load itself (the min only allows one replica): wait for any scale-down.
    wait_until(lambda: _scaled_down(cluster), timeout_s=90, what="a scale-down (ReplicasChanged n→m, m < n)")
    labelled = wait_until(
        lambda: all((cluster.kube.read(k, NAMESPACE, n) or {}).get("metadata", {}).get("labels")
                    for k, n in OWNED.items()),
        timeout_s=30, what="the owned objects' labels restored",
    )  # fmt: skip
    assert labelled
    _router_rollout_aborted(cluster)

    table = inventory.table()
    outside = emulated_api.audit.outside_table(OPERATOR_USER, table)
    assert not outside, f"requests outside the table (or refused): {outside}"
    unused = never_exercised(table, emulated_api.audit.exercised(OPERATOR_USER, table))
    assert not unused, f"table entries the operator never used (remove them, or exercise them here): {unused}"


def _router_rollout_aborted(cluster: Cluster) -> None:
    """A new image staged on a canary Deployment (created), then aborted (the canary Deployment deleted)."""
    rollout = {"steps": [50], "analysis": {"intervalSeconds": 600}}
    model = {"image": "thermostat/runtime:v2", "resources": {"gpus": 0}}
    _patch(cluster, {"spec": {"replicas": {"min": 2, "max": 3}, "rollout": rollout, "model": model}})
    wait_until(lambda: cluster.kube.read("Deployment", NAMESPACE, f"{NAME}-canary"), timeout_s=60,
               what="the canary Deployment")  # fmt: skip
    _patch(cluster, {"metadata": {"annotations": {"thermostat.dev/rollout": "abort"}}})
    wait_until(lambda: cluster.events("CanaryDeploymentDeleted"), timeout_s=60, what="the canary Deployment deleted")


def _patch(cluster: Cluster, body: dict[str, Any]) -> None:
    cluster.kube.custom.patch_namespaced_custom_object(
        "thermostat.dev", "v1alpha1", NAMESPACE, "routedmodels", NAME, body,
        _content_type="application/merge-patch+json",
    )  # fmt: skip


def _scaled_down(cluster: Cluster) -> bool:
    for event in cluster.events("ReplicasChanged"):
        before, _, after = event["message"].partition(":")[0].partition("→")
        if int(after) < int(before):
            return True
    return False
