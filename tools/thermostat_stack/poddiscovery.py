"""Prometheus's Kubernetes pod discovery, for a Prometheus built without it (Debian's 2.42 is).

Debian builds Prometheus without ``kubernetes_sd_configs``. So that the chart's relabelling still runs
in the real Prometheus, this module does what its ``role: pod`` discovery does: it lists and watches
pods through the API server as Prometheus's ServiceAccount (bearer token), turns each container port
of each pod with an IP into a target ``<podIP>:<port>`` with the pod role's ``__meta_kubernetes_*``
labels (as Prometheus documents them), and writes them as ``file_sd`` groups. Prometheus applies the
chart's ``relabel_configs`` to those labels itself; only the list+watch is done here.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
WATCH_TIMEOUT_S = 30


def _label_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _ready(pod: dict[str, Any]) -> str:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return "true" if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions) else "false"


def pod_labels(pod: dict[str, Any]) -> dict[str, str]:
    """The pod-level meta labels of Prometheus's pod role."""
    meta, status, spec = pod.get("metadata") or {}, pod.get("status") or {}, pod.get("spec") or {}
    labels = {
        "__meta_kubernetes_namespace": meta.get("namespace", ""),
        "__meta_kubernetes_pod_name": meta.get("name", ""),
        "__meta_kubernetes_pod_ip": status.get("podIP", ""),
        "__meta_kubernetes_pod_ready": _ready(pod),
        "__meta_kubernetes_pod_phase": status.get("phase", ""),
        "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
        "__meta_kubernetes_pod_host_ip": status.get("hostIP", ""),
        "__meta_kubernetes_pod_uid": meta.get("uid", ""),
    }
    for kind, values in (("label", meta.get("labels") or {}), ("annotation", meta.get("annotations") or {})):
        for key, value in values.items():
            labels[f"__meta_kubernetes_pod_{kind}_{_label_name(key)}"] = str(value)
            labels[f"__meta_kubernetes_pod_{kind}present_{_label_name(key)}"] = "true"
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner:
        labels["__meta_kubernetes_pod_controller_kind"] = owner.get("kind", "")
        labels["__meta_kubernetes_pod_controller_name"] = owner.get("name", "")
    return labels


def target_groups(pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """file_sd groups: one target per container port of each pod that has an IP (as the pod role)."""
    groups = []
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            continue  # no address yet (starting) or any more: Prometheus's pod role yields no target
        base = pod_labels(pod)
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                labels = {
                    **base,
                    "__meta_kubernetes_pod_container_name": container.get("name", ""),
                    "__meta_kubernetes_pod_container_image": container.get("image", ""),
                    "__meta_kubernetes_pod_container_init": "false",
                    "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                    "__meta_kubernetes_pod_container_port_number": str(port.get("containerPort", "")),
                    "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
                }
                groups.append({"targets": [f"{ip}:{port.get('containerPort')}"], "labels": labels})
    return groups


class PodDiscovery:
    """List and watch pods (all namespaces, or the ones given) and keep ``targets_file`` current."""

    def __init__(self, api_server: str, token: str, targets_file: Path, namespaces: Iterable[str] = ()) -> None:
        self.api_server, self.token, self.targets_file = api_server.rstrip("/"), token, targets_file
        self.namespaces = list(namespaces) or [""]
        self._pods: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(ns,), daemon=True) for ns in self.namespaces]

    def start(self) -> PodDiscovery:
        self.write()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _path(self, namespace: str) -> str:
        return f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"

    def _open(self, path: str, query: dict[str, str], timeout_s: float) -> Any:
        url = f"{self.api_server}{path}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        return urllib.request.urlopen(request, timeout=timeout_s)

    def _run(self, namespace: str) -> None:
        while not self._stop.is_set():
            try:
                version = self._list(namespace)
                self._watch(namespace, version)
            except (OSError, ValueError, urllib.error.URLError) as error:
                log.warning("pod discovery (%s): %s; retrying", namespace or "all namespaces", error)
                self._stop.wait(1.0)

    def _list(self, namespace: str) -> str:
        with self._open(self._path(namespace), {}, 10) as response:
            listing = json.load(response)
        with self._lock:
            for key in [k for k in self._pods if k.startswith(f"{namespace}/") or not namespace]:
                del self._pods[key]
            for pod in listing.get("items") or []:
                self._pods[_key(pod)] = pod
        self.write()
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, namespace: str, version: str) -> None:
        query = {"watch": "true", "resourceVersion": version, "timeoutSeconds": str(WATCH_TIMEOUT_S)}
        with self._open(self._path(namespace), query, WATCH_TIMEOUT_S + 10) as stream:
            for line in stream:
                if self._stop.is_set():
                    return
                event = json.loads(line)
                if event["type"] == "ERROR":
                    return  # e.g. 410 Gone: list again
                with self._lock:
                    if event["type"] == "DELETED":
                        self._pods.pop(_key(event["object"]), None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._pods[_key(event["object"])] = event["object"]
                self.write()

    def write(self) -> None:
        """Write the current target groups atomically (Prometheus re-reads the file by itself)."""
        with self._lock:
            groups = target_groups(self._pods.values())
        scratch = self.targets_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(groups), encoding="utf-8")
        scratch.replace(self.targets_file)


def _key(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
