"""A staged rollout in the simulator: per-pod settings, the real state machine and A/B test.

The cluster runs a fixed number of replicas (the rollout, not the replica law, is under study) with
the stable ones at ``stable_t`` and the canary ones at the candidate's temperature. Every control
period the operator's own ``advance`` runs on the same inputs it gets in a cluster: each track's
counter increases since the step began (``TrackTally``), judged by ``analyse``. The study reports
how many requests ran on the canary before the verdict and the quality they lost — the truth's KL
over their tokens, which the A/B test only ever sees through the shadowed share of them.

Per-token KL spread: the simulator knows each request's mean KL only; the squared sum the runtime
exports is modelled as that of an exponential distribution per token (E[x²] = 2·mean²), an
assumption stated in docs/BENCHMARKS.md beside the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from thermostat.api.spec import RoutedModelSpec
from thermostat.api.status import RolloutPhase, RolloutStatus
from thermostat.control import Profile
from thermostat.control.abtest import TrackSample, analyse
from thermostat.control.rollout import RolloutInput, advance, analysis_due
from thermostat.sim.engine import Cluster, TrackTally
from thermostat.sim.trace import Trace
from thermostat.sim.truth import ReplicaPhysics, Truth

SPREAD = 2.0  # E[x²] / mean² of the per-token KL (exponential)


@dataclass
class StudyResult:
    """What a rollout cost before its verdict."""

    verdict: str  # Promoted, RolledBack, or the phase when the trace ended
    verdict_s: float | None
    canary_requests: float
    canary_tokens: float
    canary_loss_percent: float  # true loss over the canary's tokens
    total_requests: float
    analyses: list[str] = field(default_factory=list)
    stable_temperatures: set[float] = field(default_factory=set)


def _sample(now: TrackTally, then: TrackTally, temperature: float) -> TrackSample:
    tokens = now.shadow_tokens - then.shadow_tokens
    kl = now.shadow_kl_nats - then.shadow_kl_nats
    return TrackSample(
        requests=now.requests - then.requests, within_slo=now.within_slo - then.within_slo, errors=0.0,
        shadow_tokens=tokens, shadow_kl_nats=kl,
        shadow_kl_sq_nats=SPREAD * (kl / tokens) ** 2 * tokens if tokens > 0 else 0.0,
        energy_j=now.energy_j - then.energy_j, temperature=temperature,
    )  # fmt: skip


def _snapshot(cluster: Cluster) -> dict[str, TrackTally]:
    return {name: TrackTally(**vars(tally)) for name, tally in cluster.tracks.items()}


@dataclass
class _Run:
    cluster: Cluster
    spec: RoutedModelSpec
    candidate_t: float
    state: RolloutStatus | None = None
    since: dict[str, TrackTally] = field(default_factory=dict)
    result: StudyResult | None = None


def _control(run: _Run, now: float, pods: tuple[str, ...]) -> None:
    """One operator period: the rollout's step from the tracks' figures, applied to the replicas."""
    rules, cluster = run.spec.rollout, run.cluster
    assert rules is not None
    analysis = None
    if analysis_due(run.state, rules, now) and run.state is not None and run.state.candidate_temperature:
        stable = _sample(cluster.tracks["stable"], run.since["stable"], cluster.temperature)
        canary = _sample(cluster.tracks["canary"], run.since["canary"], run.state.candidate_temperature)
        analysis = analyse(stable, canary, rules.analysis, run.spec.quality.max_quality_loss_percent)
    inp = RolloutInput(now=now, law_temperature=run.candidate_t, operating_temperature=run.candidate_t,
                       in_force=cluster.temperature, pods=pods, analysis=analysis)  # fmt: skip
    step = advance(run.state, rules, inp)
    before = run.state.step_started if run.state else None
    run.state = step.status
    if run.state is not None and run.state.step_started != before:
        run.since = _snapshot(cluster)  # a new analysis interval
    if analysis is not None and run.result is not None:
        run.result.analyses.append(f"{now:.0f}s {analysis.result}: {analysis.message}")
    cluster.temperature = step.stable_temperature
    cluster.canary_temperature = step.canary_temperature
    cluster.canary[:] = [name in step.canary_pods for name in pods]


def study(
    trace: Trace, spec: RoutedModelSpec, profile: Profile, truth: Truth, *,
    candidate_t: float, stable_t: float = 1.0, replicas: int = 8, dt_s: float = 0.1, seed: int = 0,
) -> StudyResult:  # fmt: skip
    """Replay ``trace`` while the candidate is staged; stop at the verdict."""
    cluster = Cluster(ReplicaPhysics(profile, truth), trace, max_replicas=replicas, temperature=stable_t,
                      shadow_fraction=spec.quality.shadow_fraction, seed=seed,
                      slo_target_s=spec.slo.target_seconds)  # fmt: skip
    cluster.start(replicas, 0.0, ready=True)
    pods = tuple(f"pod-{i:02d}" for i in range(replicas))
    run = _Run(cluster, spec, candidate_t, result=StudyResult("", None, 0, 0, 0, 0))
    result = run.result
    assert result is not None
    t, next_control, period = 0.0, 0.0, float(spec.behavior.period_seconds)
    while t < trace.duration_s:
        if t >= next_control - 1e-9:
            _control(run, t, pods)
            result.stable_temperatures.add(round(cluster.temperature, 4))
            next_control += period
            if run.state is not None and run.state.phase in (RolloutPhase.PROMOTED, RolloutPhase.ROLLED_BACK):
                result.verdict, result.verdict_s = str(run.state.phase), t
                break
        cluster.tick(t, dt_s)
        t += dt_s
    canary = cluster.tracks["canary"]
    result.verdict = result.verdict or (str(run.state.phase) if run.state else "NotStarted")
    result.canary_requests, result.canary_tokens = canary.requests, canary.tokens
    result.canary_loss_percent = 100 * math.expm1(canary.kl_lost_nats / canary.tokens) if canary.tokens else 0.0
    result.total_requests = canary.requests + cluster.tracks["stable"].requests
    return result
