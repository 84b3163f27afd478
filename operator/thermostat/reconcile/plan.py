"""The policies, pure: from a ``World`` and the law's ``Decision`` to the ``Actions`` of a run.

- Enforce writes the temperature (ConfigMap) and the replicas (scale subresource), each with an Event;
  Recommend writes neither. With ``targetRef`` Recommend owns nothing in the namespace at all; with
  ``model`` it creates the workload at T = 1 and ``replicas.min`` and never changes them after.
- Another scaler on the Deployment (HPA, ScaledObject): ``Conflict=True``, temperature only.
- Replicas changed outside Thermostat: adopted once with an Event; twice in a row is a conflict
  (``thermostat.reconcile.replicas``).
- A missing targetRef Deployment: ``Ready=False TargetNotFound``, nothing written.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from thermostat.api.spec import Mode, RoutedModelSpec
from thermostat.api.status import Settings
from thermostat.control import Decision
from thermostat.control.conditions import OTHER_SCALER, REPLICAS_OVERRIDDEN, ConditionType
from thermostat.kube.selectors import selector_matches
from thermostat.reconcile import events
from thermostat.reconcile.actions import Actions, ApplyObject, PatchObject, Scale, Write
from thermostat.reconcile.replicas import OVERRIDE_LIMIT, ReplicaVerdict, after_write, judge_replicas
from thermostat.reconcile.rollout import of_canary_deployment, plan_rollout
from thermostat.reconcile.world import Workload, World, configmap_temperature
from thermostat.render import Owner, render_owned_objects, render_routing_configmap, routing_configmap_name
from thermostat.render.objects import ROUTING_KEY
from thermostat.render.ownership import adoption_patch, created_by, manager
from thermostat.render.workload import with_image
from thermostat.scaledown import pods_to_remove
from thermostat.status import Health, conflict_verdict

EXACT = 1.0  # the routing temperature at which the model's output is the unrouted model's


def remembered(world: World) -> Settings:
    """What status last said was in force."""
    previous = world.subject.previous
    return previous.current if previous and previous.current else Settings()


def quiet_seconds(spec: RoutedModelSpec) -> float:
    """How long without an external replica change before a replica conflict clears."""
    return float(max(spec.behavior.scale_down.stabilization_window_seconds, 3 * spec.behavior.period_seconds))


def plan_invalid(world: World) -> Actions:
    """A spec that does not parse or fails the deeper checks: say what to fix, write nothing."""
    current = remembered(world)
    return Actions(health=Health(invalid_spec=world.problem), before=current, after=current, watch=world.watch)


def plan_missing_workload(world: World, spec: RoutedModelSpec) -> Actions:
    """No Deployment: a missing target is the user's to fix; our own is still being created."""
    current = remembered(world)
    if spec.target_ref is not None:
        missing = f"{world.subject.namespace}/{spec.target_ref.name}"
        health = Health(target_missing=missing, apply_error=world.apply_error)
    else:
        health = Health(replicas=spec.replicas.min, apply_error=world.apply_error)
    return Actions(health=health, before=current, after=current, watch=world.watch)


def plan_actions(world: World, decision: Decision | None, spec: RoutedModelSpec, *, now: float) -> Actions:
    """The control run's writes, Events, health and settings after, from what was read and decided."""
    workload = world.workload
    if workload is None or decision is None:
        return plan_missing_workload(world, spec)
    driven = _driven_by_another(world, spec)
    if driven:  # another RoutedModel's object: not a single write
        current = remembered(world)
        health = Health(apply_error=driven, ready_replicas=workload.ready_replicas, replicas=workload.replicas)
        return Actions(health=health, before=current, after=current, watch=world.watch)
    enforce = spec.mode == Mode.ENFORCE
    verdict, notes = _replica_view(world, workload, decision, spec, now=now)
    conflict, reason = _conflict(world.scalers, verdict)
    recreated = _recreate_configmap(world, spec)
    writes: list[Write] = list(recreated)
    if recreated:
        notes.append(events.configmap_recreated(routing_configmap_name(world.subject.name, spec), world.temperature))
        world = replace(world, configmap=recreated[0].manifest)  # what the rollout's keys are compared with
    temperature, replicas, watch = world.temperature, workload.replicas, verdict.watch
    ready = workload.ready_replicas
    # A stock server has no routing ConfigMap; a user's that is missing cannot be patched (theirs to create).
    knob = (spec.model is not None or spec.metrics.routing_knob) and world.configmap is not None
    total = decision.replicas if enforce and conflict is None else workload.replicas  # the law's, once written
    staged = plan_rollout(world, decision, spec, replicas=total) if enforce and knob else None
    writes += list(staged.writes) if staged else []
    if staged is not None:
        notes, temperature = notes + list(staged.notes), staged.temperature_after
    canary = staged.canary_replicas if staged else 0
    stable_now = workload.replicas - workload.canary_replicas
    if enforce and conflict is None and (total != workload.replicas or total - canary != stable_now):
        writes.append(_scale(world, workload, decision, canary=canary))
        replicas, watch = decision.replicas, after_write(watch, decision.replicas)
    writes += list(staged.cleanup) if staged else []
    return Actions(
        writes=tuple(writes),
        events=tuple(notes),
        health=Health(
            ready_replicas=ready,
            replicas=replicas,
            conflict=conflict,
            metrics_problem=_metrics_problem(decision),
            apply_error=world.apply_error,
        ),
        before=Settings(routing_temperature=world.temperature, replicas=workload.replicas, ready_replicas=ready),
        after=Settings(routing_temperature=temperature, replicas=replicas, ready_replicas=ready),
        applied=enforce and not decision.held and (conflict is None or decision.replicas == workload.replicas),
        watch=watch,
        verdicts={
            ConditionType.CONFLICT: conflict_verdict(conflict, reason=reason, unknown=world.scalers_unknown),
            **(staged.verdicts if staged else {}),
        },
        rollout=staged.status if staged is not None else None,
        rollout_planned=staged is not None,
    )


def _replica_view(
    world: World, workload: Workload, decision: Decision, spec: RoutedModelSpec, *, now: float
) -> tuple[ReplicaVerdict, list[events.Event]]:
    """Who else sets the replicas, and the Events that says (with a memory reset's)."""
    fallback = remembered(world).replicas
    verdict = judge_replicas(world.watch, workload.replicas, fallback=fallback, now=now, quiet_s=quiet_seconds(spec))
    notes = _replica_events(world, workload, verdict, last=world.watch.expected or fallback)
    if decision.memory_reset:
        notes.append(events.memory_reset(decision.reason))
    return verdict, notes


def owns_routing_configmap(spec: RoutedModelSpec) -> bool:
    """Whether the routing ConfigMap is one the RoutedModel creates (never a user's, never for Recommend
    on someone else's Deployment, never for pods without the routing knob)."""
    if spec.model is not None:
        return True
    target = spec.target_ref
    return bool(target and spec.mode == Mode.ENFORCE and spec.metrics.routing_knob and not target.routing_config_map)


def _recreate_configmap(world: World, spec: RoutedModelSpec) -> list[ApplyObject]:
    """Our routing ConfigMap deleted by hand: created again with the temperature last in force, so the pods,
    which kept that temperature meanwhile, carry on unchanged."""
    if world.configmap is not None or not owns_routing_configmap(spec):
        return []
    owner = Owner.from_body(world.subject.body)
    return [ApplyObject(render_routing_configmap(owner, spec, world.temperature))]


def _conflict(scalers: tuple[str, ...], verdict: ReplicaVerdict) -> tuple[str | None, str]:
    if scalers:
        return ", ".join(scalers) + " also scale(s) this Deployment", OTHER_SCALER
    return verdict.overridden, REPLICAS_OVERRIDDEN


def _replica_events(
    world: World, workload: Workload, verdict: ReplicaVerdict, *, last: int | None
) -> list[events.Event]:
    """An external change is said once: adopted, or the start of a conflict. Other scalers are expected to."""
    if world.scalers and not _said_before(world, OTHER_SCALER):
        return [events.other_scaler(world.scalers, workload.name)]
    if not verdict.external or world.scalers or last is None:
        return []
    if verdict.overridden is None:
        return [events.replicas_changed_externally(workload.name, workload.replicas, last)]
    if verdict.watch.changes == OVERRIDE_LIMIT:
        return [events.replicas_overridden(verdict.overridden)]
    return []


def _said_before(world: World, reason: str) -> bool:
    """Whether the last status already had Conflict=True for this reason (an Event is said once)."""
    previous = world.subject.previous
    conditions = previous.conditions if previous else []
    return any(c.type == ConditionType.CONFLICT and c.status == "True" and c.reason == reason for c in conditions)


def _scale(world: World, workload: Workload, decision: Decision, *, canary: int = 0) -> Scale:
    """The stable Deployment to the law's replicas, less those a router rollout's canary Deployment runs."""
    stable = decision.replicas - canary
    removed = workload.replicas - workload.canary_replicas - stable
    # Only the Deployment's own pods are ever marked, whatever the list returned.
    own = [
        p for p in world.pods
        if selector_matches(workload.selector, (p.get("metadata") or {}).get("labels") or {})
        and not of_canary_deployment(p, world.subject.name)
    ]  # fmt: skip
    mark = tuple(pods_to_remove(own, removed)) if removed > 0 else ()
    why = decision.reason if canary == 0 else f"{decision.reason}; {canary} of them on the canary Deployment"
    event = events.replicas_changed(workload.replicas, decision.replicas, why)
    return Scale(deployment=workload.name, replicas=stable, mark=mark, event=event)


def _metrics_problem(decision: Decision) -> str | None:
    verdict = decision.conditions.get(ConditionType.METRICS_AVAILABLE)
    return verdict.message if verdict is not None and verdict.status != "True" else None


def initial_settings(world: World, spec: RoutedModelSpec) -> tuple[float, int]:
    """Temperature and replicas to create with. Recommend: exact and the fewest. Enforce: what is in
    force, else what status remembers, else the ceiling and the fewest."""
    if spec.mode == Mode.RECOMMEND:
        return EXACT, spec.replicas.min
    current = remembered(world)
    temperature = configmap_temperature(world.configmap) or current.routing_temperature
    return temperature or spec.quality.max_routing_temperature, current.replicas or spec.replicas.min


def plan_owned(world: World, spec: RoutedModelSpec) -> Actions:
    """The create/update/resume pass: the owned objects to apply (never resetting the two knobs)."""
    current = remembered(world)
    if spec.target_ref is not None and world.workload is None:
        missing = f"{world.subject.namespace}/{spec.target_ref.name}"
        return Actions(health=Health(target_missing=missing), before=current, after=current, watch=world.watch,
                       retry=f"target Deployment {missing} not found")  # fmt: skip
    if spec.target_ref is not None and spec.mode == Mode.RECOMMEND:
        # Advice on someone else's Deployment: nothing of ours in the namespace.
        return Actions(before=current, after=current, watch=world.watch)
    temperature, replicas = initial_settings(world, spec)
    own_deployment_exists = spec.model is not None and world.workload is not None
    account = world.workload.service_account if spec.target_ref is not None and world.workload else None
    owner = Owner.from_body(world.subject.body)
    manifests = render_owned_objects(
        owner, spec, temperature=temperature,
        replicas=None if own_deployment_exists else replicas, target_service_account=account,
    )  # fmt: skip
    driven = _driven_by_another(world, spec)
    if driven:
        return Actions(health=Health(apply_error=driven), before=current, after=current, watch=world.watch,
                       retry=driven)  # fmt: skip
    writes: list[Write] = []
    for rendered in manifests:
        if rendered["kind"] == "ConfigMap" and world.configmap is not None:
            writes += _configmap_write(world.configmap, rendered, owner, spec)
        elif rendered["kind"] == "Deployment" and held_router(world, spec):
            writes.append(ApplyObject(with_image(rendered, str(held_router(world, spec)))))
        else:
            writes.append(ApplyObject(rendered))
    if spec.target_ref is not None and world.workload is not None:
        live = {"metadata": {"annotations": world.workload.annotations}}
        patch = adoption_patch(live, owner.name)
        writes += [PatchObject("Deployment", world.workload.name, patch, "adopted")] if patch else []
    return Actions(writes=tuple(writes), before=current, after=current, watch=world.watch)


def _configmap_write(
    live: dict[str, Any], rendered: dict[str, Any], owner: Owner, spec: RoutedModelSpec
) -> list[Write]:
    """Ours: brought to the manifest, keeping the temperature in force (the control run owns it once it exists).
    The user's, named in targetRef.routingConfigMap: only marked, and the routing key added if absent.
    Anyone else's: applied, which ``Kube.apply`` refuses (it never takes over what it did not create)."""
    wanted, in_force = rendered["data"], live.get("data") or {}
    if created_by(live, routedmodel=owner.name, uid=owner.uid):
        # The spec's keys (the SLO target) follow the spec; other keys (a canary's) stay as they are.
        data = {**in_force, **wanted, ROUTING_KEY: in_force.get(ROUTING_KEY, wanted[ROUTING_KEY])}
        return [ApplyObject({**rendered, "data": data})]
    if spec.target_ref is None or not spec.target_ref.routing_config_map:
        return [ApplyObject(rendered)]
    name = rendered["metadata"]["name"]
    patch = adoption_patch(live, owner.name, data=wanted)
    if patch is not None:
        return [PatchObject("ConfigMap", name, patch, "adopted")]
    edited = {key: value for key, value in wanted.items() if key != ROUTING_KEY and in_force.get(key) != value}
    return [PatchObject("ConfigMap", name, {"data": edited}, "updated")] if edited else []


def held_router(world: World, spec: RoutedModelSpec) -> str | None:
    """With spec.rollout (Enforce), the image the stable Deployment keeps: a new spec.model.image is the
    control run's to stage on a canary Deployment and, once promoted, to write (None: nothing held)."""
    live = world.workload.image if world.workload else None
    if spec.rollout is None or spec.model is None or spec.mode != Mode.ENFORCE or live is None:
        return None
    return live if live != spec.model.image else None


def _driven_by_another(world: World, spec: RoutedModelSpec) -> str | None:
    """A user's object already driven by another RoutedModel: two controllers would fight over it."""
    name = world.subject.name
    candidates = [("ConfigMap", world.configmap)]
    if spec.target_ref is not None and world.workload is not None:
        candidates.append(("Deployment", {"metadata": {"name": world.workload.name,
                                                        "annotations": world.workload.annotations}}))  # fmt: skip
    for kind, live in candidates:
        other = manager(live)
        if live is not None and other is not None and other != name:
            return (f"{kind} {world.subject.namespace}/{live['metadata']['name']} is already driven by RoutedModel "
                    f"{other}: point one of them elsewhere or delete it")  # fmt: skip
    return None
