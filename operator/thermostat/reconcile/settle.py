"""After the writes, pure: what is in force now, the status to write and the replica watch to keep.

"Applied" is decided here from what ``apply`` actually did, next to the code that did it, never
recomputed elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from thermostat.api.spec import RoutedModelSpec
from thermostat.api.status import DecisionRecord, RolloutStatus, RoutedModelStatus, Settings
from thermostat.control import MEMORY_VERSION, Decision
from thermostat.reconcile.actions import Actions, Outcome, PatchConfigMap, Scale
from thermostat.reconcile.events import Event, ready_lost
from thermostat.reconcile.replicas import ReplicaWatch
from thermostat.reconcile.world import World
from thermostat.status import RunOutcome, build_status, decision_record, rfc3339, rollout_records

# Used only to assemble the Ready condition of a spec that does not parse (display is dropped).
_PLACEHOLDER_SPEC = RoutedModelSpec.model_validate(
    {"model": {"image": "-"}, "slo": {"targetSeconds": 1.0}, "replicas": {"max": 1}}
)


@dataclass(frozen=True)
class Settled:
    """The run's result: the status to write, the Event for a lost Ready, the watch for the next run."""

    status: RoutedModelStatus
    event: Event | None
    watch: ReplicaWatch
    record: DecisionRecord | None = None  # this run's audit record (the operator logs every one)
    steps: tuple[DecisionRecord, ...] = ()  # the rollout steps it took, as records of kind rollout


def in_force(actions: Actions, outcome: Outcome) -> Settings:
    """The settings once the writes that were done are done."""
    done = {type(write) for write in outcome.done}
    before, after = actions.before, actions.after
    return Settings(
        routing_temperature=after.routing_temperature if PatchConfigMap in done else before.routing_temperature,
        replicas=after.replicas if Scale in done else before.replicas,
        ready_replicas=after.ready_replicas,
    )


def _rollout(world: World, actions: Actions, failed: bool) -> RolloutStatus | None:
    """The planned status.rollout once its writes are done; a refused write keeps the previous one."""
    previous = world.subject.previous.rollout if world.subject.previous else None
    return actions.rollout if actions.rollout_planned and not failed else previous


def settle(world: World, decision: Decision | None, actions: Actions, outcome: Outcome) -> Settled:
    """The status after this run, from what it saw, decided, planned and did."""
    failed = outcome.error is not None
    current = in_force(actions, outcome)
    health = replace(actions.health, apply_error=outcome.error or actions.health.apply_error)
    if current.replicas is not None and world.workload is not None:
        health = replace(health, replicas=current.replicas)
    planned_scale = any(isinstance(w, Scale) for w in actions.writes)
    scaled = any(isinstance(w, Scale) for w in outcome.done)
    watch = actions.watch
    if planned_scale and not scaled:
        watch = replace(watch, expected=actions.before.replicas, wrote=False)
    run = RunOutcome(
        now=world.now,
        generation=world.subject.generation,
        current=current,
        health=health,
        observation=world.observation,
        decision=decision,
        applied=actions.applied and not failed,
        memory_version=MEMORY_VERSION,
        verdicts=dict(actions.verdicts),
        before=actions.before,
        rollout=_rollout(world, actions, failed),
    )
    spec = world.spec or _PLACEHOLDER_SPEC
    status = build_status(world.subject.previous, spec, run)
    if world.spec is None:
        status.display = None
    record = decision_record(run, spec, time=rfc3339(world.now))
    previous = world.subject.previous.rollout if world.subject.previous else None
    steps = tuple(rollout_records(previous, run.rollout, replicas=current.replicas or 0))
    event = ready_lost(world.subject.previous, status)
    return Settled(status=status, event=event, watch=watch, record=record, steps=steps)
