"""Running clients under the chart's ServiceAccounts, and checking their requests against the table.

``install_operator_identity`` installs the chart's ServiceAccount and RBAC (rendered by Helm's own
library) into an emulated API server and returns a kubeconfig with that account's token, as the
operator's pod would get. ``Audit`` reads the server's request log (one JSON line per answered
request, each with the identity it was served as); ``outside_table`` lists an identity's requests
that no table entry allows, ``exercised`` the entries its requests used. ``operator_within_table``
and ``discovering_prometheus`` run the operator and Prometheus under those accounts and check, when
they stop, that every request they made was one their table allows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from integration_support import EmulatedApi, OperatorProcess

from chart_support import RELEASE, render
from thermostat.kube import Kube, inventory, load_api_client
from thermostat.kube.permissions import Permission
from thermostat_stack.promserver import PrometheusServer
from thermostat_stack.scrape import KubernetesDiscovery

OPERATOR_NAMESPACE = "thermostat-system"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


OPERATOR_USER = service_account_user(OPERATOR_NAMESPACE, RELEASE)


def create_objects(kube: Kube, documents: Iterable[dict[str, Any]]) -> None:
    from kubernetes import utils

    for document in documents:
        utils.create_from_dict(kube.api_client, document)


def token_kubeconfig(admin_kubeconfig: Path, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig with a fresh token of ServiceAccount ``namespace/account`` (TokenRequest, as the kubelet)."""
    kube = Kube(load_api_client(admin_kubeconfig))
    response = kube.core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"audiences": []}}, _preload_content=False
    )
    token = json.loads(response.data)["status"]["token"]
    config = yaml.safe_load(admin_kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = account
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def install_operator_identity(admin_kubeconfig: Path, path: Path, values: dict[str, Any] | None = None) -> Path:
    """Install the chart's operator ServiceAccount and RBAC; returns a kubeconfig with its token."""
    kube = Kube(load_api_client(admin_kubeconfig))
    kube.core.create_namespace({"metadata": {"name": OPERATOR_NAMESPACE}}, _preload_content=False)
    documents = [d for d in render(values or {}, namespace=OPERATOR_NAMESPACE) if d["kind"] in RBAC_KINDS]
    create_objects(kube, documents)
    return token_kubeconfig(admin_kubeconfig, OPERATOR_NAMESPACE, RELEASE, path)


def _allows(permission: Permission, entry: dict[str, Any]) -> bool:
    """A namespace entry allows requests in a namespace and, watching every namespace, across them all."""
    return (
        permission.group == (entry["group"] or "")
        and permission.resource == entry["resource"]
        and permission.subresource == (entry["subresource"] or "")
        and entry["verb"] in permission.verbs
        and (permission.scope == "namespace" or entry["namespace"] is None)
    )


@dataclass
class Audit:
    """The emulated API server's request log."""

    path: Path

    def entries(self, user: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        return [entry for line in lines if (entry := json.loads(line))["user"] == user]

    def outside_table(self, user: str, table: list[Permission]) -> list[str]:
        """The user's resource requests no entry allows, and any it was refused (403), as readable lines."""
        problems = []
        for entry in self.entries(user):
            if entry["resource"] is None:
                continue  # discovery: open to every authenticated user
            if entry["code"] == 403 or not any(_allows(p, entry) for p in table):
                problems.append(f"{entry['verb']} {entry['path']} -> {entry['code']}")
        return sorted(set(problems))

    def exercised(self, user: str, table: list[Permission]) -> set[tuple[Permission, str]]:
        """The (entry, verb) pairs of ``table`` that the user's requests used."""
        used = set()
        entries = self.entries(user)
        for permission in table:
            for verb in permission.verbs:
                if permission.delegated:
                    # Held to be granted onward: used when a Role the user wrote passed the escalation check.
                    granted = any(e["resource"] == "roles" and e["verb"] in ("create", "patch", "update")
                                  and e["code"] < 300 for e in entries)  # fmt: skip
                    if granted:
                        used.add((permission, verb))
                elif any(_allows(Permission(permission.group, permission.resource, (verb,), "", permission.subresource,
                                            permission.scope), e) and e["code"] != 403 for e in entries):  # fmt: skip
                    used.add((permission, verb))
        return used


def never_exercised(table: list[Permission], used: set[tuple[Permission, str]]) -> list[str]:
    return sorted(
        f"{verb} {p.group or 'core'}/{p.rbac_resource} ({p.why})"
        for p in table
        for verb in p.verbs
        if (p, verb) not in used
    )


DISCOVERY_NAMESPACE, DISCOVERY_ACCOUNT = "monitoring", "prometheus"
DISCOVERY_USER = service_account_user(DISCOVERY_NAMESPACE, DISCOVERY_ACCOUNT)


def permissions_of(rules: list[dict[str, Any]], why: str) -> list[Permission]:
    """RBAC rules as table entries (one per group and resource), to check a client's requests against."""
    entries = []
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                base, _, sub = resource.partition("/")
                entries.append(Permission(group, base, tuple(rule["verbs"]), why, subresource=sub))
    return entries


def install_discovery_identity(admin_kubeconfig: Path) -> tuple[str, list[Permission]]:
    """Prometheus's ServiceAccount with the chart's discovery RBAC: its token, and the rules as entries."""
    kube = Kube(load_api_client(admin_kubeconfig))
    kube.core.create_namespace({"metadata": {"name": DISCOVERY_NAMESPACE}}, _preload_content=False)
    account = {"metadata": {"name": DISCOVERY_ACCOUNT}}
    kube.core.create_namespaced_service_account(DISCOVERY_NAMESPACE, account, _preload_content=False)
    values = {"monitoring": {"discoveryRbac": {"enabled": True}}}
    documents = [d for d in render(values) if d["metadata"]["name"].endswith("-discovery")]
    create_objects(kube, documents)
    response = kube.core.create_namespaced_service_account_token(
        DISCOVERY_ACCOUNT, DISCOVERY_NAMESPACE, {"spec": {"audiences": []}}, _preload_content=False
    )
    rules = next(d["rules"] for d in documents if d["kind"] == "ClusterRole")
    return json.loads(response.data)["status"]["token"], permissions_of(rules, "Prometheus pod discovery")


@contextmanager
def operator_within_table(
    api: EmulatedApi, kubeconfig: Path, prometheus_url: str, log: Path, **settings: str
) -> Iterator[OperatorProcess]:
    """The operator process as the chart's ServiceAccount; when it stops, none of its requests fell outside
    ``thermostat.kube.permissions`` (its log tail is printed, shown by pytest when the test failed)."""
    process = OperatorProcess(kubeconfig, prometheus_url, log, **settings)
    yield process
    process.stop()
    print(process.log_tail())
    outside = api.audit.outside_table(OPERATOR_USER, inventory.table())
    assert not outside, f"operator requests outside thermostat.kube.permissions (or refused): {outside}"


@contextmanager
def discovering_prometheus(
    api: EmulatedApi, *, scrape_interval_s: float
) -> Iterator[tuple[PrometheusServer, list[Permission]]]:
    """A real Prometheus finding the pods through the emulated API as its own ServiceAccount (the chart's
    discovery RBAC and relabelling); when it stops, all its requests were allowed. Yields it and its table."""
    token, table = install_discovery_identity(api.kubeconfig)
    with PrometheusServer(discovery=KubernetesDiscovery(api.url, token), scrape_interval_s=scrape_interval_s) as server:
        yield server, table
    assert not api.audit.outside_table(DISCOVERY_USER, table)
