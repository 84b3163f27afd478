"""Every read of a run, and nothing else: the RoutedModel, its objects, other scalers, pods, metrics.

``gather`` serves the control run, ``gather_owned`` the create/update/resume pass; both return a
``World``. The only state they touch is the per-RoutedModel Prometheus source cache.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from thermostat.api.spec import Mode, RoutedModelSpec
from thermostat.checks import parse_spec, spec_problems
from thermostat.control import Observation, Signal
from thermostat.control.rollout import analysis_due, unix
from thermostat.kube import list_pods, other_scalers
from thermostat.metrics import (
    OBSERVED,
    MetricsError,
    Reading,
    Scope,
    Signals,
    collect,
    prometheus_config,
    prometheus_failed,
    unusable,
)
from thermostat.metrics.direct import DirectMetrics, pod_targets
from thermostat.metrics.prometheus import PrometheusAuth
from thermostat.metrics.templates import observed_signals
from thermostat.metrics.tracks import TrackPair, track_pair
from thermostat.reconcile.world import (
    Context,
    ResourceState,
    Subject,
    Workload,
    World,
    target_deployment_name,
    temperature_in_force,
)
from thermostat.render import routing_configmap_name
from thermostat.render.identity import ROUTEDMODEL_LABEL
from thermostat.render.workload import canary_deployment_name
from thermostat.settings import OperatorSettings


def validated_spec(body: dict[str, object], settings: OperatorSettings) -> tuple[RoutedModelSpec | None, str | None]:
    """The spec, or what to fix (schema-level or deeper)."""
    spec, problem = parse_spec(body.get("spec"))
    if spec is None:
        return None, problem
    problems = spec_problems(spec, default_prometheus_url=settings.prometheus_url)
    return (spec, "; ".join(problems)) if problems else (spec, None)


def _objects(context: Context, subject: Subject, spec: RoutedModelSpec, now: float, state: ResourceState) -> World:
    """The RoutedModel with its Deployment and routing ConfigMap (what both passes need)."""
    kube, namespace = context.kube, subject.namespace
    deployment = kube.read("Deployment", namespace, target_deployment_name(subject.name, spec))
    configmap = kube.read("ConfigMap", namespace, routing_configmap_name(subject.name, spec))
    # A router rollout's canary Deployment (only ever with spec.model): its replicas count in the law's total.
    canary = kube.read("Deployment", namespace, canary_deployment_name(subject.name)) if spec.model else None
    workload = Workload.from_deployment(deployment).with_canary(canary) if deployment is not None else None
    return World(
        now=now,
        subject=subject,
        spec=spec,
        workload=workload,
        configmap=configmap,
        canary=canary,
        temperature=temperature_in_force(configmap, subject.previous, spec.quality.max_routing_temperature),
        watch=state.watch,
        apply_error=state.apply_error,
    )


def gather_owned(context: Context, state: ResourceState, body: dict[str, object]) -> World:
    """What the create/update/resume pass plans from."""
    subject, now = Subject.from_body(dict(body)), context.clock()
    spec, problem = validated_spec(body, context.settings)
    if spec is None or problem:
        return World(now=now, subject=subject, spec=spec, problem=problem or "invalid spec")
    return _objects(context, subject, spec, now, state)


def gather(context: Context, state: ResourceState, namespace: str, name: str) -> World | None:
    """What a control run decides and plans from; None when the RoutedModel is gone or going."""
    body = context.kube.read_routedmodel(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    world = gather_owned(context, state, body)
    if world.spec is None or world.problem or world.workload is None:
        return world
    spec, workload, subject = world.spec, world.workload, world.subject
    signals = observe(context, state, subject, spec, now=world.now)
    tracks, tracks_missing = read_tracks(state, subject, spec, now=world.now, unusable=signals.unreachable)
    scalers = other_scalers(context.kube, namespace, workload.name)
    return replace(
        world,
        tracks=tracks,
        tracks_missing=tracks_missing,
        scalers=scalers.found,
        scalers_unknown=scalers.unknown,
        pods=tuple(list_pods(context.kube, namespace, workload.selector)),
        observation=build_observation(world.now, world.temperature, workload, signals, spec.slo.window_seconds),
        metrics_errors=dict(signals.errors),
    )


def read_tracks(
    state: ResourceState, subject: Subject, spec: RoutedModelSpec, *, now: float, unusable: bool
) -> tuple[TrackPair | None, str | None]:
    """A rollout's A/B figures when its analysis is due, or why they could not be read."""
    rollout = subject.previous.rollout if subject.previous else None
    if spec.mode != Mode.ENFORCE or rollout is None or not analysis_due(rollout, spec.rollout, now):
        return None, None
    if unusable or state.source is None or rollout.step_started is None or rollout.candidate_temperature is None:
        return None, "the metrics source is unusable"
    window = max(int(now - unix(rollout.step_started)), 1)
    scope = Scope(namespace=subject.namespace, routedmodel=subject.name)
    try:
        pair = track_pair(state.source[1], scope, spec.slo, window, stable_t=rollout.stable_temperature,
                          canary_t=rollout.candidate_temperature)  # fmt: skip
    except MetricsError as error:
        return None, f"{error.reason}: {error}"
    return pair, None


def observe(context: Context, state: ResourceState, subject: Subject, spec: RoutedModelSpec, *, now: float) -> Signals:
    """Every signal of the RoutedModel: from Prometheus, or from the pods directly while Prometheus fails;
    an unusable source configuration makes them all Missing, with why."""
    prom = spec.metrics.prometheus
    try:
        auth = None
        if prom.auth_secret_ref is not None:
            secret = f"{subject.namespace}/{prom.auth_secret_ref.name}"
            data = context.kube.read_secret_data(subject.namespace, prom.auth_secret_ref.name)
            auth = PrometheusAuth.from_secret_data(data, insecure_skip_verify=prom.insecure_skip_verify, secret=secret)
        config = prometheus_config(
            spec,
            auth=auth,
            default_url=context.settings.prometheus_url,
            timeout_ceiling_s=context.settings.prometheus_timeout_seconds,
        )
    except (LookupError, ValueError) as error:
        return unusable(f"MetricsSourceUnusable: {error}", observed_signals(spec.metrics, OBSERVED))
    if state.source is None or state.source[0] != config.key:
        state.source = (config.key, config.build())
    scope = Scope(namespace=subject.namespace, routedmodel=subject.name)
    signals = collect(state.source[1], scope, now=now, signals=observed_signals(spec.metrics, OBSERVED))
    if not prometheus_failed(signals):
        state.direct = None  # a later outage starts from fresh scrapes, not from hours-old ones
        return signals
    pods = list_pods(context.kube, subject.namespace, {"matchLabels": {ROUTEDMODEL_LABEL: subject.name}})
    return direct_signals(state, spec, scope, pods, now=now) or signals


def direct_signals(
    state: ResourceState, spec: RoutedModelSpec, scope: Scope, pods: list[dict[str, Any]], *, now: float
) -> Signals | None:
    """The signals read from the pods' own /metrics (the pods Prometheus scrapes: those labelled with the
    RoutedModel, DESIGN §3); None when no pod answered, so Prometheus' Missing stands."""
    key = spec.slo.model_dump_json() + spec.metrics.model_dump_json()
    if state.direct is None or state.direct[0] != key:
        state.direct = (key, DirectMetrics(slo=spec.slo, metrics=spec.metrics))
    source = state.direct[1]
    try:
        source.scrape(pod_targets(pods), now=now)
    except MetricsError:
        return None
    signals = collect(source, scope, now=now, signals=observed_signals(spec.metrics, OBSERVED))
    return replace(signals, source="direct")


def build_observation(
    now: float, temperature: float, workload: Workload, signals: Signals, window_s: float
) -> Observation:
    """The law's Observation: the knobs in force and every signal; timed by the newest sample."""
    newest = signals.newest_time
    return Observation(
        time=newest if newest is not None else now,
        routing_temperature=temperature,
        replicas=workload.replicas,
        ready_replicas=workload.ready_replicas,
        window_s=float(window_s),
        latency_s=signals.get(Signal.LATENCY),
        request_rate=signals.get(Signal.REQUEST_RATE),
        served_rate=signals.get(Signal.SERVED_RATE),
        shed_rate=signals.get(Signal.SHED_RATE),
        token_rate=signals.get(Signal.TOKEN_RATE),
        power_w=signals.get(Signal.POWER),
        energy_rate_w=signals.get(Signal.ENERGY),
        quality_kl_nats=signals.get(Signal.QUALITY_KL),
        shadow_token_rate=signals.get(Signal.SHADOW_TOKENS),
        quality_agreement=signals.get(Signal.QUALITY),
        queue_depth=signals.get(Signal.QUEUE_DEPTH),
        within_slo=signals.get(Signal.WITHIN_SLO),
        power_source=signals.power_source if isinstance(signals.get(Signal.POWER), Reading) else None,
        metrics_source=signals.source,
    )
