"""The Helm chart: lint-clean, every rendered manifest valid (strict), its copies of the CRD and the
generated RBAC rules fresh, Pod Security "restricted", and the watch scope deciding Role or ClusterRole.
"""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
import yaml

from chart_support import ALL_ON, CHART, NAMESPACE, REPO, crds, find, merged, notes, render, validate
from thermostat.api.crd import CRD_FILE_NAME
from thermostat.kube.inventory import rules_yaml
from thermostat.kube.permissions import REGENERATE_COMMAND, RULES_FILE

pytestmark = pytest.mark.fast
WATCHED = {"watch": {"namespaces": ["team-a", "team-b"]}, "ha": {"enabled": False}}


def test_helm_lint_is_clean_with_defaults_and_with_every_option() -> None:
    for values in ({}, ALL_ON, merged(ALL_ON, WATCHED)):
        report = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems, (values, problems)
        assert not report["errors"], (values, report["errors"])


@pytest.mark.parametrize("values", [{}, ALL_ON, merged(ALL_ON, WATCHED)], ids=["defaults", "all-on", "namespaced"])
def test_every_rendered_manifest_validates_strictly(values: dict[str, Any]) -> None:
    documents = render(values)
    assert documents
    for document in documents:
        validate(document)


def test_the_validator_refuses_an_unknown_field() -> None:
    """The check above can fail: a misspelt field is refused, for built-in and monitoring kinds."""
    documents = render(ALL_ON)
    deployment = find(documents, "StatefulSet")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(Exception, match="securityContex"):
        validate(deployment)
    monitor = find(documents, "PodMonitor")[0]
    monitor["spec"]["podMetricsEndpoints"][0]["relabellings"] = []
    with pytest.raises(Exception, match="relabellings"):
        validate(monitor)


def test_every_optional_part_is_off_by_default() -> None:
    kinds = {d["kind"] for d in render({})}
    assert kinds == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "StatefulSet", "Service",
                     "ClusterKopfPeering"}  # fmt: skip
    on = {(d["kind"], d["metadata"]["name"]) for d in render(ALL_ON)}
    assert {("PodMonitor", "thermostat-runtime"), ("ServiceMonitor", "thermostat-runtime"),
            ("PrometheusRule", "thermostat"), ("ConfigMap", "thermostat-dashboard"),
            ("ConfigMap", "thermostat-scrape-config"), ("ClusterRole", "thermostat-discovery")} <= on  # fmt: skip


def test_the_crd_copy_is_fresh() -> None:
    committed = (REPO / "crds" / CRD_FILE_NAME).read_text()
    copy = (CHART / "crds" / CRD_FILE_NAME).read_text()
    assert copy == committed, f"charts/thermostat/crds/ is stale: cp crds/{CRD_FILE_NAME} charts/thermostat/crds/"
    names = sorted(c["metadata"]["name"] for c in crds())
    assert names == ["clusterkopfpeerings.kopf.dev", "routedmodels.thermostat.dev"]


def test_the_rbac_rules_file_is_generated_from_the_permission_table() -> None:
    assert (REPO / RULES_FILE).read_text() == rules_yaml(), f"{RULES_FILE} is stale; regenerate: {REGENERATE_COMMAND}"


def test_cluster_wide_grants_the_generated_rules_in_one_cluster_role() -> None:
    generated = yaml.safe_load(rules_yaml())
    documents = render({})
    (role,) = find(documents, "ClusterRole")
    assert role["rules"] == generated["namespaced"] + generated["cluster"]
    (binding,) = find(documents, "ClusterRoleBinding")
    (account,) = find(documents, "ServiceAccount")
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    assert binding["subjects"] == [subject]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_a_namespace_list_grants_roles_there_and_only_cluster_scoped_rules_cluster_wide() -> None:
    generated = yaml.safe_load(rules_yaml())
    documents = render(WATCHED)
    roles = find(documents, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(r["rules"] == generated["namespaced"] for r in roles)
    assert sorted(b["metadata"]["namespace"] for b in find(documents, "RoleBinding")) == ["team-a", "team-b"]
    (cluster_role,) = find(documents, "ClusterRole")
    assert cluster_role["rules"] == generated["cluster"]
    env = find(documents, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "THERMOSTAT_NAMESPACES", "value": '["team-a","team-b"]'} in env


def test_the_operator_pod_meets_pod_security_restricted() -> None:
    pod = find(render({}), "StatefulSet")[0]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    assert container["image"] == "ghcr.io/thermostat-dev/operator:0.1.0"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["THERMOSTAT_LIVENESS_ENDPOINT"] == "http://0.0.0.0:8080/healthz"


def test_values_outside_the_schema_are_refused_naming_the_key() -> None:
    with pytest.raises(helm_python.HelmError, match="prometheusURL"):
        render({"operator": {"prometheusURL": "http://x"}})
    with pytest.raises(helm_python.HelmError, match="namespaces"):
        render({"watch": {"namespaces": ["Not_A_Namespace"]}})


def test_notes_say_what_sets_the_scoping_labels() -> None:
    assert "nothing in this release sets them" in notes({})
    assert "PodMonitor thermostat-runtime" in notes(ALL_ON)
    assert "kubectl apply --server-side -f" in notes({})


def test_the_dashboard_configmap_holds_the_dashboard_file() -> None:
    (dashboard,) = find(render(ALL_ON), "ConfigMap", "thermostat-dashboard")
    assert dashboard["data"]["thermostat.json"] == (CHART / "files" / "dashboard.json").read_text()


def operator_env(values: dict[str, Any]) -> dict[str, Any]:
    (statefulset,) = find(render(values), "StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_by_default_two_replicas_peer_and_the_longest_running_one_acts() -> None:
    documents = render({})
    (statefulset,) = find(documents, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 2
    # One replica at a time, each ready before the next starts: no two start together.
    assert statefulset["spec"]["podManagementPolicy"] == "OrderedReady"
    assert statefulset["spec"]["minReadySeconds"] > 0
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    (peering,) = find(documents, "ClusterKopfPeering")
    env = operator_env({})
    assert env["THERMOSTAT_PEERING"] == peering["metadata"]["name"]
    assert env["THERMOSTAT_PRIORITY_BY_START"] == "true"
    assert env["THERMOSTAT_IDENTITY"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "THERMOSTAT_PRIORITY" not in env  # a fixed priority would let a restarted replica start above


def test_without_ha_one_standalone_replica_and_no_peering_object() -> None:
    documents = render({"ha": {"enabled": False}})
    assert find(documents, "StatefulSet")[0]["spec"]["replicas"] == 1
    assert not find(documents, "ClusterKopfPeering")
    assert not {"THERMOSTAT_PEERING", "THERMOSTAT_PRIORITY_BY_START"} & set(operator_env({"ha": {"enabled": False}}))


def test_replicas_that_would_all_act_are_refused_naming_the_fix() -> None:
    with pytest.raises(helm_python.HelmError, match=r"replicaCount 2 needs ha\.enabled=true"):
        render({"replicaCount": 2, "ha": {"enabled": False}})
    with pytest.raises(helm_python.HelmError, match=r"ha\.enabled with watch\.namespaces"):
        render({"watch": {"namespaces": ["team-a"]}})
    assert find(render({"replicaCount": 3}), "StatefulSet")[0]["spec"]["replicas"] == 3
