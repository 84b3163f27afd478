"""A router change staged on a canary Deployment, live: the real operator process and the emulated API server
(its Deployment controller creates each Deployment's pods).

A new ``spec.model.image`` must never reach the stable Deployment while it is staged: the operator
creates ``chat-canary`` with the new image on one of the two replicas (the law's total) and scales
the stable one to the other. An abort deletes the canary Deployment and leaves the stable one's
template byte for byte as it was; a promotion gives the stable Deployment the new image and deletes
the canary. Every request the operator made falls within its declared permissions (delete included).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_support import NAME, NAMESPACE, Cluster, EmulatedApi, OperatorProcess, wait_until
from rbac_support import operator_within_table

from thermostat_stack.promserver import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]
CANARY = f"{NAME}-canary"


@pytest.fixture
def operator(
    emulated_api: EmulatedApi, operator_kubeconfig: Path, prometheus: PrometheusServer, tmp_path: Path
) -> Iterator[OperatorProcess]:
    with operator_within_table(emulated_api, operator_kubeconfig, prometheus.url, tmp_path / "operator.log") as process:
        yield process


def spec(image: str) -> dict[str, Any]:
    return {
        "model": {"image": image, "resources": {"gpus": 0}},
        "slo": {"targetSeconds": 10, "windowSeconds": 15},
        "replicas": {"min": 2, "max": 2},
        "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10},
        "rollout": {"steps": [50], "analysis": {"intervalSeconds": 600}},
    }


def patch_routedmodel(cluster: Cluster, patch: dict[str, Any]) -> None:
    cluster.kube.custom.patch_namespaced_custom_object(
        "thermostat.dev", "v1alpha1", NAMESPACE, "routedmodels", NAME, patch,
        _content_type="application/merge-patch+json",
    )  # fmt: skip


def deployment(cluster: Cluster, name: str) -> dict[str, Any] | None:
    return cluster.kube.read("Deployment", NAMESPACE, name)


def image(live: dict[str, Any] | None) -> str | None:
    return None if live is None else str(live["spec"]["template"]["spec"]["containers"][0]["image"])


def staged(cluster: Cluster, new: str) -> dict[str, Any]:
    """Edit the image; wait for the canary Deployment with one of the two replicas."""
    patch_routedmodel(cluster, {"spec": {"model": {"image": new, "resources": {"gpus": 0}}}})
    canary = wait_until(
        lambda: (d := deployment(cluster, CANARY)) is not None and d["spec"].get("replicas") == 1 and d,
        timeout_s=60, what="the canary Deployment",
    )  # fmt: skip
    assert image(canary) == new
    assert canary["spec"]["template"]["metadata"]["labels"]["thermostat.dev/track"] == "canary"
    wait_until(lambda: (deployment(cluster, NAME) or {})["spec"].get("replicas") == 1, timeout_s=30,
               what="the stable Deployment at the other replica")  # fmt: skip
    return canary


def test_an_aborted_router_leaves_the_stable_deployment_unchanged_and_a_good_one_is_promoted(
    emulated_api: EmulatedApi, operator: OperatorProcess
) -> None:
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    cluster.create_routedmodel(spec("thermostat/runtime:1"))
    wait_until(lambda: (deployment(cluster, NAME) or {}).get("spec", {}).get("replicas") == 2, timeout_s=60,
               what="the stable Deployment at two replicas")  # fmt: skip
    template = json.dumps(deployment(cluster, NAME)["spec"]["template"], sort_keys=True)  # type: ignore[index]
    staged(cluster, "thermostat/runtime:2")
    assert image(deployment(cluster, NAME)) == "thermostat/runtime:1"
    assert (cluster.status().get("rollout") or {}).get("candidateRouter") == "thermostat/runtime:2"

    patch_routedmodel(cluster, {"metadata": {"annotations": {"thermostat.dev/rollout": "abort"}}})
    wait_until(lambda: deployment(cluster, CANARY) is None, timeout_s=60, what="the canary Deployment deleted")
    wait_until(lambda: (deployment(cluster, NAME) or {})["spec"].get("replicas") == 2, timeout_s=30,
               what="the stable Deployment back at the total")  # fmt: skip
    assert json.dumps(deployment(cluster, NAME)["spec"]["template"], sort_keys=True) == template  # type: ignore[index]
    wait_until(lambda: (cluster.status().get("rollout") or {}).get("phase") == "RolledBack", timeout_s=30,
               what="status: RolledBack")  # fmt: skip
    assert cluster.events("CanaryDeploymentDeleted")

    staged(cluster, "thermostat/runtime:3")
    patch_routedmodel(cluster, {"metadata": {"annotations": {"thermostat.dev/rollout": "promote"}}})
    wait_until(lambda: image(deployment(cluster, NAME)) == "thermostat/runtime:3", timeout_s=60,
               what="the stable Deployment on the promoted image")  # fmt: skip
    wait_until(lambda: deployment(cluster, CANARY) is None, timeout_s=60, what="the canary Deployment deleted")
    # The status patch follows the run's writes: wait for it too.
    wait_until(lambda: (cluster.status().get("rollout") or {}).get("phase") == "Promoted", timeout_s=30,
               what="status: Promoted")  # fmt: skip
    rules = [d.get("rule") for d in cluster.status().get("decisions", []) if d.get("kind") == "rollout"]
    assert rules[-2:] == ["Started", "Promoted"]
