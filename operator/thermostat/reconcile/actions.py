"""What a run means to do, as data: the writes (each with the Event that reports it), the other
Events, the health behind ``Ready``, and the settings in force before and after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thermostat.api.status import RolloutStatus, Settings
from thermostat.control.types import Verdict
from thermostat.reconcile.events import Event
from thermostat.reconcile.replicas import ReplicaWatch
from thermostat.status import Health


@dataclass(frozen=True)
class PatchConfigMap:
    """Set the routing temperature in the routing ConfigMap (the pods apply it within a second)."""

    name: str
    data: dict[str, str | None]  # None removes the key (the canary's, when a rollout ends)
    event: Event
    knob: str = "temperature"


@dataclass(frozen=True)
class Scale:
    """Set the Deployment's replicas through its scale subresource, marking pods to remove first."""

    deployment: str
    replicas: int
    mark: tuple[str, ...]  # pods given the lowest deletion cost before a scale-down
    event: Event
    knob: str = "replicas"


@dataclass(frozen=True)
class SetTrack:
    """Put pods on a track of a staged rollout (label ``thermostat.dev/track``)."""

    pods: tuple[str, ...]
    track: str  # stable or canary


@dataclass(frozen=True)
class ClearCommand:
    """Remove the one-shot ``thermostat.dev/rollout`` annotation once its promote/abort is done."""

    annotation: str


@dataclass(frozen=True)
class ApplyObject:
    """Create an owned object, or bring the live one to this manifest."""

    manifest: dict[str, Any]


@dataclass(frozen=True)
class PatchObject:
    """A merge patch on a user's object the RoutedModel drives: its marks, the keys it needs (adopt, release)."""

    kind: str
    name: str
    patch: dict[str, Any]
    what: str  # how the change is reported: "adopted", "released"


@dataclass(frozen=True)
class DeleteDeployment:
    """Remove an owned Deployment (a router rollout's canary, once promoted or rolled back)."""

    name: str
    claim: dict[str, Any]  # the metadata rendered for it: only an object carrying its mark is removed
    event: Event


Write = PatchConfigMap | Scale | ApplyObject | PatchObject | SetTrack | ClearCommand | DeleteDeployment


@dataclass(frozen=True)
class Actions:
    """One run's plan. ``applied`` says whether the law's decision is carried out by these writes."""

    writes: tuple[Write, ...] = ()
    events: tuple[Event, ...] = ()  # posted whatever the writes do (warnings, facts)
    health: Health = field(default_factory=Health)
    before: Settings = field(default_factory=Settings)  # in force when the run started
    after: Settings = field(default_factory=Settings)  # in force once every write is done
    applied: bool = False
    watch: ReplicaWatch = field(default_factory=ReplicaWatch)  # the replica watch once every write is done
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # conditions the operator adds (Conflict)
    retry: str | None = None  # the create/update pass must be retried later, and why
    rollout: RolloutStatus | None = None  # status.rollout once every write is done
    rollout_planned: bool = False  # whether ``rollout`` replaces status.rollout (False: keep the previous)


@dataclass(frozen=True)
class Outcome:
    """What ``apply`` did: the writes done in order, and the API's refusal that stopped the rest."""

    done: tuple[Write, ...] = ()
    error: str | None = None
    changed: tuple[str, ...] = ()  # owned objects created or updated ("created Deployment/chat")
