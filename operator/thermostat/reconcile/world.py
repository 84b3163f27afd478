"""What one run knows: the RoutedModel, its Deployment, ConfigMap, other scalers, pods and metrics.

``World`` is plain data; ``thermostat.reconcile.gather`` fills it with every read of a run, and the
planners decide from it alone. ``Context`` is the process's (one per operator), ``ResourceState``
one RoutedModel's, kept in Kopf's per-object ``memo`` so it is born and dies with the object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from thermostat.api.spec import RoutedModelSpec
from thermostat.api.status import RoutedModelStatus
from thermostat.control import Observation, Profile
from thermostat.kube import Kube, ObjectRef
from thermostat.metrics import MetricsError
from thermostat.metrics.direct import DirectMetrics
from thermostat.metrics.prometheus import PrometheusMetrics
from thermostat.metrics.tracks import TrackPair
from thermostat.reconcile.replicas import ReplicaWatch
from thermostat.render.objects import ROUTING_KEY
from thermostat.render.workload import runtime_image
from thermostat.settings import OperatorSettings
from thermostat.status import parse_status


@dataclass
class Context:
    """What every run of this operator process shares."""

    kube: Kube
    settings: OperatorSettings
    profile: Profile
    clock: Callable[[], float] = time.time


@dataclass
class ResourceState:
    """One RoutedModel's in-memory state between runs (lost on restart: status holds what must last)."""

    watch: ReplicaWatch = field(default_factory=ReplicaWatch)
    source: tuple[str, PrometheusMetrics] | None = None  # (configuration key, source)
    direct: tuple[str, DirectMetrics] | None = None  # the pods scraped directly, while Prometheus fails
    apply_error: str | None = None  # the API's refusal of an owned object, until an apply succeeds
    last_good_s: float | None = None  # the last run with every needed signal fresh


@dataclass(frozen=True)
class Subject:
    """The RoutedModel a run is about, as read at its start."""

    body: dict[str, Any]
    namespace: str
    name: str
    generation: int | None
    previous: RoutedModelStatus | None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Subject:
        meta = body["metadata"]
        return cls(body, meta["namespace"], meta["name"], meta.get("generation"), parse_status(body.get("status")))

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(namespace=self.namespace, name=self.name, uid=self.body["metadata"].get("uid", ""))


@dataclass(frozen=True)
class Workload:
    """What the driven Deployment says now."""

    name: str
    replicas: int  # spec.replicas (with a router rollout's canary Deployment: both together, the law's total)
    ready_replicas: int
    selector: dict[str, Any]  # the whole LabelSelector: matchLabels and matchExpressions
    service_account: str
    annotations: dict[str, str] = field(default_factory=dict)
    image: str | None = None  # the runtime container's image: the router the stable pods serve
    canary_replicas: int = 0  # of ``replicas``, those of the canary Deployment

    @classmethod
    def from_deployment(cls, deployment: dict[str, Any]) -> Workload:
        spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
        replicas = spec.get("replicas")
        pod_spec = ((spec.get("template") or {}).get("spec")) or {}
        return cls(
            name=deployment["metadata"]["name"],
            replicas=1 if replicas is None else int(replicas),
            ready_replicas=int(status.get("readyReplicas") or 0),
            selector=dict(spec.get("selector") or {}),
            service_account=pod_spec.get("serviceAccountName") or "default",
            annotations=dict(deployment["metadata"].get("annotations") or {}),
            image=runtime_image(deployment),
        )

    def with_canary(self, canary: dict[str, Any] | None) -> Workload:
        """The stable Deployment and a router rollout's canary Deployment as one workload of the law's replicas."""
        if canary is None or (canary.get("metadata") or {}).get("deletionTimestamp"):
            return self
        other = Workload.from_deployment(canary)
        return replace(self, replicas=self.replicas + other.replicas, canary_replicas=other.replicas,
                       ready_replicas=self.ready_replicas + other.ready_replicas)  # fmt: skip


@dataclass(frozen=True)
class World:
    """Everything one run read, at ``now``; absent parts were not read (an invalid spec, no Deployment)."""

    now: float
    subject: Subject
    spec: RoutedModelSpec | None
    problem: str | None = None  # what makes the spec invalid
    workload: Workload | None = None  # the Deployment driven; None when it does not exist
    configmap: dict[str, Any] | None = None  # the routing ConfigMap, live
    canary: dict[str, Any] | None = None  # a router rollout's canary Deployment, live
    temperature: float = 1.0  # the routing temperature in force
    scalers: tuple[str, ...] = ()  # HPAs and ScaledObjects on the Deployment
    scalers_unknown: str | None = None  # why other scalers could not be looked for (a 403)
    pods: tuple[dict[str, Any], ...] = ()
    observation: Observation | None = None
    metrics_errors: dict[str, MetricsError] = field(default_factory=dict)
    watch: ReplicaWatch = field(default_factory=ReplicaWatch)
    apply_error: str | None = None  # an owned object the API refused, from the create/update pass
    tracks: TrackPair | None = None  # a rollout's A/B figures, read when its analysis was due
    tracks_missing: str | None = None  # why they could not be read


def target_deployment_name(name: str, spec: RoutedModelSpec) -> str:
    """The Deployment a RoutedModel drives: its own, or the targetRef's."""
    return spec.target_ref.name if spec.target_ref is not None else name


def configmap_temperature(configmap: dict[str, Any] | None) -> float | None:
    """The temperature a routing ConfigMap holds, or None when absent or unreadable."""
    raw = ((configmap or {}).get("data") or {}).get(ROUTING_KEY)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and 0.0 < value <= 1.0 else None


def temperature_in_force(configmap: dict[str, Any] | None, previous: RoutedModelStatus | None, ceiling: float) -> float:
    """The ConfigMap's temperature, else what status last said was in force, else the ceiling."""
    current = previous.current if previous else None
    remembered = current.routing_temperature if current else None
    return configmap_temperature(configmap) or remembered or ceiling
