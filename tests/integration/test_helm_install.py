"""``helm install`` of the chart into the emulated API server (Helm's own library, Helm 4: server-side
apply, which the emulator serves as a merge of the applied configuration), then the operator run as
the installed StatefulSet says — its environment, its ServiceAccount's token, two replicas started in
order and peered through the chart's ClusterKopfPeering — reconciles an example, written by one replica only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from integration_support import Cluster, EmulatedApi, OperatorProcess, wait_until
from rbac_support import OPERATOR_NAMESPACE, OPERATOR_USER, token_kubeconfig

from chart_support import CHART, RELEASE
from thermostat.handlers import USER_AGENT
from thermostat.kube import inventory
from thermostat_stack.promserver import PrometheusServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "local-stack.yaml"


def helm_install(kubeconfig: Path, values: dict[str, Any]) -> dict[str, Any]:
    config = helm_python.Config(kubeconfig_path=str(kubeconfig), namespace=OPERATOR_NAMESPACE)
    release: dict[str, Any] = config.install(
        helm_python.Chart.load(CHART), RELEASE, values, namespace=OPERATOR_NAMESPACE, create_namespace=True, timeout=60
    )
    return release


def installed_statefulset(cluster: Cluster) -> dict[str, Any]:
    response = cluster.kube.apps.read_namespaced_stateful_set(RELEASE, OPERATOR_NAMESPACE, _preload_content=False)
    statefulset: dict[str, Any] = json.loads(response.data)
    return statefulset


def pod_environment(statefulset: dict[str, Any]) -> dict[str, str]:
    """The operator container's THERMOSTAT_* settings, as the installed StatefulSet sets them."""
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def peers(cluster: Cluster, name: str) -> int:
    """How many replicas have a record in the chart's peering object."""
    response = cluster.kube.custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name,
                                                             _preload_content=False)  # fmt: skip
    return sum(isinstance(entry, dict) for entry in (json.loads(response.data).get("status") or {}).values())


def writers(emulated_api: EmulatedApi) -> set[str]:
    """The pod names (THERMOSTAT_IDENTITY, in the operator's User-Agent) of the replicas that wrote."""
    prefix = f"{USER_AGENT} ("
    return {e["userAgent"].removeprefix(prefix).rstrip(")") for e in _entries(emulated_api)
            if e["verb"] in ("create", "patch", "update") and e.get("userAgent", "").startswith(prefix)}  # fmt: skip


@pytest.fixture
def installed(emulated_api: EmulatedApi, prometheus: PrometheusServer) -> dict[str, Any]:
    return helm_install(emulated_api.kubeconfig, {"operator": {"prometheusUrl": prometheus.url}})


def test_helm_install_then_the_chart_operator_reconciles_an_example(
    emulated_api: EmulatedApi, installed: dict[str, Any], tmp_path: Path
) -> None:
    assert installed["status"] == "deployed"
    cluster = Cluster(emulated_api.kubeconfig)
    helm_writes = [e for e in _entries(emulated_api) if e["user"] == "thermostat-admin" and e["verb"] == "patch"]
    assert {e["resource"] for e in helm_writes} >= {"statefulsets", "serviceaccounts", "clusterroles",
                                                    "clusterkopfpeerings"}  # applied  # fmt: skip
    statefulset = installed_statefulset(cluster)
    env = pod_environment(statefulset)
    assert env["THERMOSTAT_PROMETHEUS_URL"].startswith("http://127.0.0.1:")
    kubeconfig = token_kubeconfig(emulated_api.kubeconfig, OPERATOR_NAMESPACE, RELEASE, tmp_path / "sa-kubeconfig")
    operators: list[OperatorProcess] = []
    try:
        # The pods as OrderedReady starts them: each after the one before is up (here: in the peering object).
        for ordinal in range(statefulset["spec"]["replicas"]):
            # The pod's ports are the container's; here each process gets free ones.
            pod = {**env, "THERMOSTAT_IDENTITY": f"{RELEASE}-{ordinal}", "THERMOSTAT_METRICS_PORT": "0",
                   "THERMOSTAT_LIVENESS_ENDPOINT": f"http://127.0.0.1:{free_port()}/healthz"}  # fmt: skip
            operators.append(OperatorProcess(kubeconfig, env["THERMOSTAT_PROMETHEUS_URL"],
                                             tmp_path / f"operator-{ordinal}.log", **pod))  # fmt: skip
            wait_until(lambda n=ordinal + 1: peers(cluster, env["THERMOSTAT_PEERING"]) == n, timeout_s=60,
                       what=f"pod {ordinal} in the peering object")  # fmt: skip
        example = yaml.safe_load(EXAMPLE.read_text())
        namespace, name = example["metadata"]["namespace"], example["metadata"]["name"]
        cluster.kube.custom.create_namespaced_custom_object(
            "thermostat.dev", "v1alpha1", namespace, "routedmodels", example, _preload_content=False
        )
        wait_until(
            lambda: cluster.kube.read("Deployment", namespace, name), timeout_s=60, what="the example's Deployment"
        )
        wait_until(lambda: _ready(cluster, namespace, name), timeout_s=60, what="the example Ready")
        acted = writers(emulated_api)  # before the teardown: a stopped active replica hands over
    finally:
        for operator in reversed(operators):
            operator.stop()
            print(operator.log_tail())
    assert not emulated_api.audit.outside_table(OPERATOR_USER, inventory.table())
    assert len(operators) == 2
    assert acted == {f"{RELEASE}-0"}  # the first started is the only one acting


def _ready(cluster: Cluster, namespace: str, name: str) -> bool:
    body = cluster.kube.read_routedmodel(namespace, name) or {}
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _entries(emulated_api: EmulatedApi) -> list[dict[str, Any]]:
    return [json.loads(line) for line in emulated_api.audit.path.read_text().splitlines()]
