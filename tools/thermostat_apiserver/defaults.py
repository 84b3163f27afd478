"""Defaults the real API server fills in for built-in kinds, so objects read back as on a cluster.

Only the fields our kinds and kubectl's output show; an operator comparing what it wrote with
what it reads must expect these, as it would on a real cluster.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from thermostat_apiserver.resources import ResourceType
from thermostat_apiserver.store import Obj


def _container(container: dict[str, Any]) -> None:
    image = str(container.get("image", ""))
    latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        _container(container)


def _deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("type", "RollingUpdate")
        strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


class ServiceAddresses:
    """ClusterIPs handed out from 10.96.0.0/12, as the service IP allocator does."""

    def __init__(self) -> None:
        self._next = int(ipaddress.IPv4Address("10.96.0.10"))

    def allocate(self) -> str:
        self._next += 1
        return str(ipaddress.IPv4Address(self._next))


class BuiltinDefaults:
    """The admission step that defaults Deployments, Pods and Services."""

    def __init__(self) -> None:
        self._addresses = ServiceAddresses()

    def __call__(self, rt: ResourceType, old: Obj | None, new: Obj, strict: bool) -> Obj:
        if rt.key == "deployments.apps":
            _deployment(new)
        elif rt.key == "pods":
            pod_spec(new.setdefault("spec", {}))
        elif rt.key == "services":
            self._service(new, old)
        return new

    def _service(self, obj: Obj, old: Obj | None) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if spec.get("clusterIP") != "None":
            address = (
                (old or {}).get("spec", {}).get("clusterIP") or spec.get("clusterIP") or self._addresses.allocate()
            )
            spec["clusterIP"] = address
            spec["clusterIPs"] = [address]
