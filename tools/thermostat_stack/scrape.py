"""The runtime pods' scrape job as a cluster without prometheus-operator runs it: Kubernetes discovery.

One job, ``kubernetes_sd_configs`` with role ``pod`` against an API server, keeping the runtime pods'
``http`` port and labelling their series ``namespace``, ``pod`` and ``routedmodel``. The relabelling is
the chart's own (``monitoring.selection`` + ``monitoring.relabelings`` in ``charts/thermostat/values.yaml``,
copied to ``scrape_relabelings.yaml`` here and kept equal by a test), converted from prometheus-operator's
camelCase to Prometheus's snake_case exactly as the chart's template converts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

JOB = "thermostat-runtime"
# prometheus-operator RelabelConfig fields -> Prometheus relabel_config fields (the chart's _helpers.tpl).
KEYS = {
    "sourceLabels": "source_labels",
    "targetLabel": "target_label",
    "separator": "separator",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}


def chart_relabelings() -> dict[str, list[dict[str, Any]]]:
    """The chart's ``selection`` and ``relabelings`` blocks (prometheus-operator spelling)."""
    text = resources.files("thermostat_stack").joinpath("scrape_relabelings.yaml").read_text(encoding="utf-8")
    blocks: dict[str, list[dict[str, Any]]] = yaml.safe_load(text)
    return blocks


def relabel_configs(relabelings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """prometheus-operator relabelings as Prometheus relabel_configs; an unknown key is an error naming it."""
    configs = []
    for rule in relabelings:
        unknown = sorted(set(rule) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown relabeling key(s) {unknown}; known: {sorted(KEYS)}")
        configs.append({KEYS[key]: (value.lower() if key == "action" else value) for key, value in rule.items()})
    return configs


@dataclass(frozen=True)
class KubernetesDiscovery:
    """Where Prometheus discovers pods: an API server URL, a bearer token, optionally some namespaces."""

    api_server: str
    token: str
    namespaces: tuple[str, ...] = ()


def runtime_relabel_configs() -> list[dict[str, Any]]:
    """The chart's selection and labelling of the runtime pods, as Prometheus relabel_configs."""
    blocks = chart_relabelings()
    return relabel_configs([*blocks["selection"], *blocks["relabelings"]])


def runtime_job(discovery: KubernetesDiscovery, *, token_file: str, interval: str) -> dict[str, Any]:
    """The scrape job of the runtime pods (the chart's ``scrape-config`` ConfigMap, with the API server named)."""
    sd: dict[str, Any] = {
        "role": "pod",
        "api_server": discovery.api_server,
        "authorization": {"type": "Bearer", "credentials_file": token_file},
    }
    if discovery.namespaces:
        sd["namespaces"] = {"names": list(discovery.namespaces)}
    return {
        "job_name": JOB,
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "kubernetes_sd_configs": [sd],
        "relabel_configs": runtime_relabel_configs(),
    }


def file_sd_runtime_job(targets_file: str, *, interval: str) -> dict[str, Any]:
    """The same job over file_sd groups carrying the pod role's meta labels (:mod:`poddiscovery`)."""
    return {
        "job_name": JOB,
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "file_sd_configs": [{"files": [targets_file], "refresh_interval": "1s"}],
        "relabel_configs": runtime_relabel_configs(),
    }


# What Prometheus's pod discovery needs (the chart's monitoring.discoveryRbac grants the same).
DISCOVERY_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]


def discovery_token(api: Any, *, namespace: str = "monitoring", account: str = "prometheus") -> str:
    """Create Prometheus's ServiceAccount with pod discovery rights in ``api`` (an ApiServer); its token."""
    registry, store = api.registry, api.store
    rbac = "rbac.authorization.k8s.io"
    store.create(registry.require("", "v1", "namespaces"), None, {"metadata": {"name": namespace}})
    store.create(registry.require("", "v1", "serviceaccounts"), namespace, {"metadata": {"name": account}})
    store.create(registry.require(rbac, "v1", "clusterroles"), None,
                 {"metadata": {"name": "prometheus-discovery"}, "rules": DISCOVERY_RULES})  # fmt: skip
    binding = {
        "metadata": {"name": "prometheus-discovery"},
        "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "prometheus-discovery"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    store.create(registry.require(rbac, "v1", "clusterrolebindings"), None, binding)
    token: str = api.tokens.issue(namespace, account)
    return token
