"""The law without a routing profile: servers with no routing knob (stock vLLM), replicas only.

Such pods publish no profile and read no routing temperature. The law then plans with a
one-point profile at ``T = 1`` (so the temperature stays exact and only replicas move) whose
throughput is the spec's ``replicas.capacityHintTokensPerSecond`` or an assumed guess, and learns the
replica's real latency and capacity online from what it observes (``learning``: the latency scale
below the queueing knee, the capacity scale above it). Until it has learned from observations with
completions covering ``CAPACITY_EVIDENCE_WINDOWS`` SLO windows (and at least
``CAPACITY_EVIDENCE_SAMPLES`` of them), it does not scale down — a guess is not evidence — and the
``CapacityKnown`` condition says so. Pure: no I/O.
"""

from __future__ import annotations

import math

from thermostat.api.spec import RoutedModelSpec
from thermostat.control import conditions as c
from thermostat.control.memory import LawMemory
from thermostat.control.profile import Profile, ProfilePoint
from thermostat.control.types import Verdict

ONLINE = "online"  # provenance of a profile the law learns as it goes
CAPACITY_EVIDENCE_SAMPLES = 4  # observations with completions learned from before a scale-down, at least
CAPACITY_EVIDENCE_WINDOWS = 2.0  # ... and as many as cover this many SLO windows
# Without a hint: a 7-8B model on one current GPU serves ~2000 generated tokens/s at a batch of 64
# (vLLM's published benchmarks are of that order). Only a prior: learning corrects it.
ASSUMED_PEAK_TOKENS_PER_S = 2000.0
BATCH = 64
# One request alone, as a share of the peak: optimistic on purpose (a real stream is nearer 5%). The
# latency correction rises 30x but falls only 10x, and a prior slower than the SLO for a lone request
# would hold the law in its "SLO below a lone request's latency" branch until corrected.
SINGLE_STREAM_SHARE = 0.25


def online_profile(capacity_hint_tokens_per_s: float | None) -> Profile:
    """The one-point (exact-only) profile of a replica whose capacity is learned online."""
    peak = capacity_hint_tokens_per_s or ASSUMED_PEAK_TOKENS_PER_S
    single = peak * SINGLE_STREAM_SHARE
    point = ProfilePoint(
        routing_temperature=1.0,
        flops_fraction=1.0,
        kl_nats=0.0,
        top1_agreement=1.0,
        tokens_per_s=((1, single), (BATCH, peak)),
    )
    source = "spec.replicas.capacityHintTokensPerSecond" if capacity_hint_tokens_per_s else "assumed"
    return Profile(model="(no profile)", device=source, provenance=ONLINE, t_min=1.0, points=(point,))


def profile_for(spec: RoutedModelSpec, routing_profile: Profile) -> Profile:
    """The profile the law plans with: the runtime's when the pods have the routing knob, else online."""
    if spec.metrics.routing_knob:
        return routing_profile
    return online_profile(spec.replicas.capacity_hint_tokens_per_second)


def evidence_needed(spec: RoutedModelSpec) -> int:
    """Observations with completions a profile-less law learns from before it scales down."""
    windows = CAPACITY_EVIDENCE_WINDOWS * spec.slo.window_seconds / spec.behavior.period_seconds
    return max(CAPACITY_EVIDENCE_SAMPLES, math.ceil(windows))


def learning_online(profile: Profile, mem: LawMemory, spec: RoutedModelSpec) -> bool:
    """True while a profile-less law has too little evidence to scale down."""
    return profile.provenance == ONLINE and mem.samples < evidence_needed(spec)


def hold_scale_down(
    replicas: int, note: str, current: int, *, profile: Profile, mem: LawMemory, spec: RoutedModelSpec
) -> tuple[int, str]:
    """No scale-down on a guessed capacity: keep the replicas until the evidence is in."""
    if replicas >= current or not learning_online(profile, mem, spec):
        return replicas, note
    return current, f"no scale-down before capacity is learned ({mem.samples} of {evidence_needed(spec)} observations)"


def capacity_verdict(profile: Profile, mem: LawMemory, spec: RoutedModelSpec, *, peak_tokens_per_s: float) -> Verdict:
    """CapacityKnown: where the law's idea of one replica's capacity comes from."""
    if profile.provenance != ONLINE:
        return c.verdict(c.TRUE, c.CAPACITY_FROM_PROFILE, f"routing profile of {profile.model} ({profile.provenance})")
    seed = "capacityHintTokensPerSecond" if profile.device != "assumed" else "an assumed guess"
    if learning_online(profile, mem, spec):
        return c.verdict(
            c.FALSE,
            c.CAPACITY_LEARNING,
            f"no routing profile (replicas only): capacity is learned online from {seed}; "
            f"{mem.samples} of {evidence_needed(spec)} observations with completions so far, "
            "no scale-down before then",
        )
    return c.verdict(
        c.TRUE,
        c.CAPACITY_LEARNED,
        f"no routing profile (replicas only): learned online from {mem.samples} observations, "
        f"~{peak_tokens_per_s:.0f} generated tokens/s per replica at full batch (seeded from {seed})",
    )
