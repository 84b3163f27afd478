"""The staged rollout's part of a run's plan, pure: the two ConfigMap keys, pod tracks, the command.

``thermostat.control.rollout`` decides the step; this module turns it into writes, in the order
that keeps every pod on a setting it may serve: the ConfigMap first (a rollback drops the canary
key, so canary pods fall back to the stable temperature at once), then the pods' track labels,
then the removal of the ``thermostat.dev/rollout`` annotation whose command was carried out.

A router rollout's writes are Deployments: the canary Deployment sized to the step's share of the
law's replicas, and at the end the stable Deployment taking the new template (promotion) and the
canary Deployment's removal (``cleanup``: after the stable one is scaled to the total, so the
replicas never dip below it on the stable side). The pods of the canary Deployment are never relabelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thermostat.api.spec import RoutedModelSpec
from thermostat.api.status import RolloutStatus
from thermostat.control import Decision
from thermostat.control.abtest import analyse
from thermostat.control.conditions import ConditionType
from thermostat.control.rollout import ABORT, PROMOTE, RolloutInput, RolloutStep, advance, rollout_verdict
from thermostat.control.types import Verdict
from thermostat.reconcile import events
from thermostat.reconcile.actions import ApplyObject, ClearCommand, DeleteDeployment, PatchConfigMap, SetTrack, Write
from thermostat.reconcile.world import World
from thermostat.render import Owner, render_deployment, routing_configmap_name
from thermostat.render.objects import CANARY_KEY, ROUTING_KEY, format_routing_temperature
from thermostat.render.workload import canary_deployment_name, render_canary_deployment

COMMAND_ANNOTATION = "thermostat.dev/rollout"
TRACK_LABEL = "thermostat.dev/track"
CANARY, STABLE = "canary", "stable"


@dataclass(frozen=True)
class RolloutPlan:
    """The temperature writes (staged or not) with their Events, the status to keep, the condition."""

    temperature_after: float  # the stable key once the writes are done
    writes: tuple[Write, ...]  # the ConfigMap patch first, then the pods' tracks, then the command
    notes: tuple[events.Event, ...]
    status: RolloutStatus | None
    verdicts: dict[str, Verdict]  # Rollout, with spec.rollout (or to retire a stale one)
    canary_replicas: int = 0  # of the law's replicas, those the canary Deployment runs after this run
    cleanup: tuple[Write, ...] = ()  # after the stable Deployment's scale: the canary Deployment's removal


def _meta(pod: dict[str, Any]) -> dict[str, Any]:
    return pod.get("metadata") or {}


def of_canary_deployment(pod: dict[str, Any], routedmodel: str) -> bool:
    """A pod of a router rollout's canary Deployment: its owner is the canary's ReplicaSet (named after the
    Deployment) or, under controllers without ReplicaSets, the canary Deployment itself."""
    canary = canary_deployment_name(routedmodel)
    names = [str(ref.get("name", "")) for ref in _meta(pod).get("ownerReferences") or []]
    return any(name == canary or name.startswith(canary + "-") for name in names)


def serving_pods(pods: tuple[dict[str, Any], ...], routedmodel: str = "") -> tuple[str, ...]:
    """Pods of the stable Deployment that take requests: ready and not terminating."""
    names = []
    for pod in pods:
        if routedmodel and of_canary_deployment(pod, routedmodel):
            continue
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in ((pod.get("status") or {}).get("conditions") or [])
        )
        if ready and not _meta(pod).get("deletionTimestamp"):
            names.append(_meta(pod)["name"])
    return tuple(sorted(names))


def command(world: World) -> str | None:
    """The one-shot command a person annotated (promote or abort), lower-cased; None when absent."""
    value = (_meta(world.subject.body).get("annotations") or {}).get(COMMAND_ANNOTATION)
    return value.strip().lower() if isinstance(value, str) else None


def plan_rollout(world: World, decision: Decision, spec: RoutedModelSpec, *, replicas: int) -> RolloutPlan:
    """This run's rollout step as writes (``spec.rollout`` unset: undo any canary left behind).
    ``replicas``: the law's total once this run's writes are done."""
    previous = world.subject.previous.rollout if world.subject.previous else None
    if spec.rollout is None:
        step = RolloutStep(None, decision.routing_temperature, None, ())
    else:
        step = advance(previous, spec.rollout, _input(world, decision, spec, replicas))
    data = _keys(world, step)
    writes: list[Write] = [_configmap_write(world, spec, decision, step, data)] if data else []
    writes += _tracks(world, step.canary_pods)
    router, cleanup = _router_writes(world, spec, step)
    writes += router
    asked = command(world)
    notes = [events.Event(n.reason, n.message, n.warning) for n in step.notes]
    if asked is not None:
        writes.append(ClearCommand(COMMAND_ANNOTATION))
        if asked not in (PROMOTE, ABORT):
            notes.append(events.Event("RolloutCommandIgnored", f"{COMMAND_ANNOTATION}={asked!r}: use promote or abort",
                                      warning=True))  # fmt: skip
        elif not step.command_done or spec.rollout is None:
            notes.append(events.Event("RolloutCommandIgnored", f"{COMMAND_ANNOTATION}={asked}: no rollout in progress"))
    previous_types = {c.type for c in world.subject.previous.conditions} if world.subject.previous else set()
    wanted = spec.rollout is not None or ConditionType.ROLLOUT in previous_types
    verdicts: dict[str, Verdict] = {ConditionType.ROLLOUT: _verdict(step, spec)} if wanted else {}
    after = step.stable_temperature if data else world.temperature
    return RolloutPlan(after, tuple(writes), tuple(notes), step.status, verdicts, step.canary_replicas, cleanup)


TARGET_REF_NOTE = (
    "with targetRef only temperature changes are staged: a new image or template of your Deployment reaches "
    "its pods through the Deployment's own rolling update"
)


def _verdict(step: RolloutStep, spec: RoutedModelSpec) -> Verdict:
    """The Rollout condition; with targetRef it says that a router change of the user's Deployment is not staged."""
    verdict = rollout_verdict(step.status)
    if spec.target_ref is None or spec.rollout is None or verdict.status == "True":
        return verdict
    return Verdict(verdict.status, verdict.reason, f"{verdict.message}; {TARGET_REF_NOTE}")


def _router_writes(world: World, spec: RoutedModelSpec, step: RolloutStep) -> tuple[list[Write], tuple[Write, ...]]:
    """A router rollout's Deployments: the canary sized to its share, the stable one's new template on
    promotion, and the canary's removal once it serves no share (promoted, rolled back, unset)."""
    if spec.model is None:
        return [], ()
    owner = Owner.from_body(world.subject.body)
    writes: list[Write] = []
    if step.promote_router is not None:
        writes.append(ApplyObject(render_deployment(owner, spec, replicas=None)))
    if step.canary_replicas > 0:
        writes.append(ApplyObject(render_canary_deployment(owner, spec, replicas=step.canary_replicas)))
        return writes, ()
    if world.canary is None:
        return writes, ()
    name = canary_deployment_name(world.subject.name)
    claim = render_canary_deployment(owner, spec, replicas=1)["metadata"]
    why = f"the router rollout ended ({step.status.phase})" if step.status else "spec.rollout was unset"
    event = events.Event("CanaryDeploymentDeleted", f"Deployment {name} deleted: {why}")
    return writes, (DeleteDeployment(name, claim, event),)


def _configmap_write(
    world: World, spec: RoutedModelSpec, decision: Decision, step: RolloutStep, data: dict[str, str | None]
) -> PatchConfigMap:
    """The routing keys the step changes, with the Event saying why (a held stable key says so)."""
    new, law = step.stable_temperature, decision.routing_temperature
    why = decision.reason
    if abs(new - law) > 1e-9:
        why = f"stable pods held at {new:.2f}: the law's {law:.2f} is staged or was rolled back"
    canary = data.get(CANARY_KEY, "")
    if canary != "":
        why += f"; canary pods {canary}" if canary is not None else "; canary key removed: every pod serves stable"
    return PatchConfigMap(
        name=routing_configmap_name(world.subject.name, spec),
        data=dict(data),
        event=events.temperature_changed(world.temperature, new, why),
    )


def _input(world: World, decision: Decision, spec: RoutedModelSpec, replicas: int) -> RolloutInput:
    analysis = None
    if world.tracks is not None and spec.rollout is not None:
        pair = world.tracks
        analysis = analyse(pair.stable, pair.canary, spec.rollout.analysis, spec.quality.max_quality_loss_percent)
    asked = command(world)
    return RolloutInput(
        now=world.now, law_temperature=decision.routing_temperature,
        operating_temperature=decision.operating_temperature or decision.routing_temperature,
        in_force=world.temperature, pods=serving_pods(world.pods, world.subject.name), analysis=analysis,
        metrics_missing=world.tracks_missing, command=asked if asked in (PROMOTE, ABORT) else None,
        slo_exact=world.tracks.slo_exact if world.tracks else True,
        router=spec.model.image if spec.model else None,
        served_router=world.workload.image if world.workload else None, replicas=replicas,
    )  # fmt: skip


def _keys(world: World, step: RolloutStep) -> dict[str, str | None]:
    """The ConfigMap keys that differ from what the rollout step wants."""
    live = dict((world.configmap or {}).get("data") or {})
    wanted: dict[str, str | None] = {ROUTING_KEY: format_routing_temperature(step.stable_temperature)}
    wanted[CANARY_KEY] = (
        None if step.canary_temperature is None else format_routing_temperature(step.canary_temperature)
    )
    return {key: value for key, value in wanted.items() if live.get(key) != value}


def _tracks(world: World, canary: tuple[str, ...]) -> tuple[SetTrack, ...]:
    """Relabel the pods whose track differs from the step's (absent label: stable)."""
    to_canary, to_stable = [], []
    for pod in world.pods:
        if of_canary_deployment(pod, world.subject.name):
            continue  # its track is its Deployment's
        name, labels = str(_meta(pod).get("name")), _meta(pod).get("labels") or {}
        on_canary = labels.get(TRACK_LABEL) == CANARY
        if name in canary and not on_canary:
            to_canary.append(name)
        elif name not in canary and on_canary:
            to_stable.append(name)
    writes = []
    if to_stable:
        writes.append(SetTrack(tuple(sorted(to_stable)), STABLE))
    if to_canary:
        writes.append(SetTrack(tuple(sorted(to_canary)), CANARY))
    return tuple(writes)
