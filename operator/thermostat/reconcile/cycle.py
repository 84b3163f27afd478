"""One RoutedModel's runs: gather → decide → plan → apply → one status patch.

``control_run`` is the control loop's period (the Kopf daemon calls it in a worker thread);
``ensure_owned`` the create/update/resume pass over the owned objects. Synchronous, like the
Kubernetes and Prometheus clients. Every decision lives in ``plan``/``settle``; this module only
sequences them and keeps the operator's own metrics.
"""

from __future__ import annotations

import time
from dataclasses import replace

from thermostat.control import Decision, decide
from thermostat.control.online import profile_for
from thermostat.control.signals import reading_value
from thermostat.reconcile.actions import Actions, Outcome
from thermostat.reconcile.apply import apply, write_status
from thermostat.reconcile.audit import log_decision, publish_savings
from thermostat.reconcile.gather import gather, gather_owned
from thermostat.reconcile.plan import plan_actions, plan_invalid, plan_owned
from thermostat.reconcile.settle import settle
from thermostat.reconcile.world import Context, ResourceState, World
from thermostat.telemetry import DECISIONS, LOOP_DURATION, QUERY_ERRORS, SINCE_GOOD_OBSERVATION, record_objectives

DEFAULT_PERIOD_S = 15.0


def control_run(context: Context, state: ResourceState, namespace: str, name: str) -> float:
    """One control run; returns the seconds to wait before the next (from the live spec)."""
    started = time.monotonic()
    try:
        world = gather(context, state, namespace, name)
        if world is None:
            return DEFAULT_PERIOD_S
        decision = _decide(context, world)
        if world.spec is None or world.problem:
            actions = plan_invalid(world)
        else:
            actions = plan_actions(world, decision, world.spec, now=world.now)
        outcome = apply(context.kube, world.subject.ref, actions)
        _finish(context, state, world, decision, actions=actions, outcome=outcome)
        return period_s(context, world)
    finally:
        LOOP_DURATION.observe(time.monotonic() - started)


def ensure_owned(context: Context, state: ResourceState, body: dict[str, object]) -> str | None:
    """Apply the owned objects; returns why the pass must be retried, if it must."""
    world = gather_owned(context, state, body)
    if world.spec is None or world.problem:
        _finish(context, state, world, None, actions=plan_invalid(world), outcome=Outcome())
        return None
    actions = plan_owned(world, world.spec)
    outcome = apply(context.kube, world.subject.ref, actions)
    state.apply_error = outcome.error or actions.health.apply_error
    if state.apply_error is not None or actions.health.target_missing:
        _finish(context, state, replace(world, apply_error=state.apply_error), None, actions=actions, outcome=outcome)
    return outcome.error or actions.retry


def _decide(context: Context, world: World) -> Decision | None:
    if world.spec is None or world.problem or world.observation is None:
        return None
    previous = world.subject.previous
    memory = previous.memory.state if previous and previous.memory else None
    profile = profile_for(world.spec, context.profile)
    return decide(world.observation, world.spec, memory, world.now, profile=profile)


def _finish(
    context: Context,
    state: ResourceState,
    world: World,
    decision: Decision | None,
    *,
    actions: Actions,
    outcome: Outcome,
) -> None:
    """Write the run's status, keep the replica watch, count what happened."""
    settled = settle(world, decision, actions, outcome)
    state.watch = settled.watch
    write_status(context.kube, world.subject.ref, settled.status, settled.event)
    namespace, name = world.subject.namespace, world.subject.name
    for record in (settled.record, *settled.steps):
        if record is not None:
            log_decision(namespace, name, record)
    previous = world.subject.previous
    publish_savings(namespace, name, previous.savings if previous else None, settled.status.savings)
    for error in world.metrics_errors.values():
        QUERY_ERRORS.labels(namespace, name, error.reason).inc()
    if decision is not None and world.spec is not None:
        DECISIONS.labels(namespace, name, str(world.spec.mode), str(decision.held).lower()).inc()
        if not decision.held:
            state.last_good_s = world.now
        SINCE_GOOD_OBSERVATION.labels(namespace, name).set(world.now - (state.last_good_s or world.now))
    if world.spec is not None:
        observation = world.observation
        record_objectives(
            namespace, name, target_s=world.spec.slo.target_seconds,
            budget_w=world.spec.budget.power_watts if world.spec.budget else None,
            latency_s=reading_value(observation.latency_s) if observation else None,
            power_w=reading_value(observation.power_w) if observation else None,
        )  # fmt: skip


def period_s(context: Context, world: World) -> float:
    """The live spec's control period, floored by the operator's setting."""
    period = world.spec.behavior.period_seconds if world.spec else DEFAULT_PERIOD_S
    return max(float(period), context.settings.min_period_seconds)
