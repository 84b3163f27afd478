"""A plant for the law's scenario tests whose truth is NOT the law's own model (DESIGN §5).

What differs from ``thermostat.control.model.ResponseModel`` (what the law assumes):
- latency: an M/M/1-like knee ``1 + 2ρ²/(1 − ρ)`` on a batch-1 base (the law: ``1 + ρ⁸/(1 − ρ)`` on the
  batch whose throughput matches the load), a tail spread of 3.0 (the law's prior: 2.2), and above
  saturation a queue that grows, capped at ``MAX_LATENCY_S``;
- capacity: the profile's peak throughput times ``capacity_factor`` (tests use 0.7 to 1.3), and routing
  that saves time as ``0.5 + 0.5 × flops_fraction`` (the profile's own time fraction is not used);
- cold starts drawn per pod between 60 and 120 s (seeded); a pod's first window after it turns ready
  is its warm-up, its requests ``warmup_factor`` times slower;
- power: 80 W idle, 650 W full, exponent 0.85 (the law: 90, 700, 0.7);
- quality: the true KL is the profile's times ``quality_factor``; shadow requests (the spec's
  ``shadowFraction``) measure it.
Signals come as the metrics layer delivers them: Idle for a window without requests, Missing on demand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from thermostat.api import RoutedModelSpec
from thermostat.control import Decision, Idle, Missing, Observation, Profile, Reading, decide
from thermostat.control.signals import SignalValue
from thermostat.profiles import load_profile, runtime_data_dir

# The scenario tests are written against the assumed H100 profile, whatever measured profile is committed
# beside it (default_profile_path() prefers a measured one).
ASSUMED_PROFILE_PATH = runtime_data_dir() / "profiles" / "assumed.json"
MAX_LATENCY_S = 120.0
SPREAD = 3.0
IDLE_W, MAX_W, POWER_EXPONENT = 80.0, 650.0, 0.85


def assumed_profile() -> Profile:
    """The assumed H100 profile the scenario tests' numbers are written for."""
    return load_profile(ASSUMED_PROFILE_PATH)


def make_spec(**overrides: Any) -> RoutedModelSpec:
    data: dict[str, Any] = {
        "targetRef": {"name": "chat"},
        "slo": {"quantile": 0.95, "targetSeconds": 15.0},
        "replicas": {"min": 1, "max": 16},
    }
    for key, value in overrides.items():
        data[key] = value
    return RoutedModelSpec.model_validate(data)


@dataclass
class Plant:
    """Replicas and knobs as a cluster would hold them, stepped one control period at a time."""

    profile: Profile
    spec: RoutedModelSpec
    replicas: int = 2
    temperature: float = 1.0
    capacity_factor: float = 1.0
    quality_factor: float = 1.0
    warmup_factor: float = 1.0
    tokens_per_request: float = 200.0
    cold_start_s: tuple[float, float] = (60.0, 120.0)
    seed: int = 0
    now: float = 0.0
    memory: dict[str, Any] | None = None
    law_profile: Profile | None = None  # what the law plans with, when not the truth's profile
    ready_at: list[float] = field(default_factory=list)
    history: list[Decision] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ready_at = [self.now - 3600.0] * self.replicas
        self._rng = random.Random(self.seed)

    # -- the truth ---------------------------------------------------------------------------------
    def peak_tokens_per_s(self, temperature: float) -> float:
        exact = self.profile.tokens_per_s(1.0, self.profile.max_batch) * self.capacity_factor
        return exact / (0.5 + 0.5 * self.profile.flops_fraction(temperature))

    def latency_s(self, rate: float, ready: int | None = None, temperature: float | None = None) -> float:
        """True SLO-quantile latency at ``rate`` requests/s spread over ``ready`` replicas."""
        t = self.temperature if temperature is None else temperature
        n = max(self.ready() if ready is None else ready, 1)
        rho = rate * self.tokens_per_request / n / self.peak_tokens_per_s(t)
        per_token = 1.0 / self.profile.tokens_per_s(1.0, 1) / self.capacity_factor
        base = SPREAD * self.tokens_per_request * per_token * (0.5 + 0.5 * self.profile.flops_fraction(t))
        if rho >= 1.0:
            return MAX_LATENCY_S
        return min(MAX_LATENCY_S, base * (1.0 + 2.0 * rho**2 / (1.0 - rho)))

    def power_w(self, rate: float) -> float:
        ready = self.ready()
        starting = self.replicas - ready
        if ready == 0:
            return IDLE_W * starting
        flops = rate * self.tokens_per_request * self.profile.flops_fraction(self.temperature) / ready
        u = min(1.0, flops / (self.profile.tokens_per_s(1.0, self.profile.max_batch) * self.capacity_factor))
        return ready * (IDLE_W + (MAX_W - IDLE_W) * u**POWER_EXPONENT) + starting * IDLE_W

    def kl_nats(self) -> float:
        return self.profile.kl_nats(self.temperature) * self.quality_factor

    def ready(self) -> int:
        return sum(1 for t in self.ready_at if t <= self.now)

    def warming(self) -> bool:
        window = self.spec.slo.window_seconds
        return any(self.now - window < t <= self.now for t in self.ready_at)

    # -- what the metrics layer delivers -----------------------------------------------------------
    def observe(self, rate: float, *, drop: tuple[str, ...] = ()) -> Observation:
        window = float(self.spec.slo.window_seconds)
        t = self.now
        latency = self.latency_s(rate) * (self.warmup_factor if self.warming() else 1.0)
        capacity = self.ready() * self.peak_tokens_per_s(self.temperature) / self.tokens_per_request
        served = min(rate, capacity)
        shadow_tokens = served * self.spec.quality.shadow_fraction * self.tokens_per_request

        def load(value: float) -> SignalValue:
            return Reading(value, t) if value > 0 else Idle(t)

        values: dict[str, SignalValue] = {
            "latency_s": Reading(latency, t) if served > 0 else Idle(t),
            "request_rate": load(rate),
            "served_rate": load(served),
            "shed_rate": load(rate - served),
            "token_rate": load(served * self.tokens_per_request),
            "power_w": Reading(self.power_w(rate), t),
            "energy_rate_w": Reading(self.power_w(rate), t),
            "quality_kl_nats": Reading(self.kl_nats(), t) if shadow_tokens > 0 else Idle(t),
            "shadow_token_rate": load(shadow_tokens),
            "quality_agreement": Missing("NotModelled: the plant models KL only"),
            "queue_depth": Reading(0.0, t),
        }
        for name, key in (("latency", "latency_s"), ("requestRate", "request_rate"), ("power", "power_w")):
            if name in drop:
                values[key] = Missing("NoData: dropped by the test")
        return Observation(
            time=t,
            routing_temperature=self.temperature,
            replicas=self.replicas,
            ready_replicas=self.ready(),
            window_s=window,
            power_source="estimate",
            **values,  # type: ignore[arg-type]
        )

    # -- the loop ----------------------------------------------------------------------------------
    def step(self, rate: float, *, drop: tuple[str, ...] = ()) -> Decision:
        profile = self.law_profile or self.profile
        decision = decide(self.observe(rate, drop=drop), self.spec, self.memory, self.now, profile=profile)
        self.apply(decision)
        self.now += self.spec.behavior.period_seconds
        return decision

    def apply(self, decision: Decision) -> None:
        self.memory = decision.memory
        self.temperature = decision.routing_temperature
        if decision.replicas > self.replicas:
            lo, hi = self.cold_start_s
            self.ready_at += [self.now + self._rng.uniform(lo, hi) for _ in range(decision.replicas - self.replicas)]
        else:
            self.ready_at = sorted(self.ready_at)[: decision.replicas]
        self.replicas = decision.replicas
        self.history.append(decision)

    def latency_now(self, rate: float) -> float:
        return self.latency_s(rate)


def observation(**fields: Any) -> Observation:
    """An Observation from plain numbers (None = Missing), for tests that need one exact reading."""
    t = float(fields.pop("time", 0.0))
    base: dict[str, Any] = {
        "routing_temperature": 1.0,
        "replicas": 1,
        "ready_replicas": 1,
        "window_s": 60.0,
    }
    base.update({k: fields.pop(k) for k in list(fields) if k in base})
    signals = (
        "latency_s", "request_rate", "served_rate", "shed_rate", "token_rate", "power_w", "energy_rate_w",
        "quality_kl_nats", "shadow_token_rate", "quality_agreement", "queue_depth",
    )  # fmt: skip
    power_source = fields.pop("power_source", None)
    for name in signals:
        value = fields.pop(name, None)
        if isinstance(value, Reading | Idle | Missing):
            base[name] = value
        elif value is None:
            base[name] = Missing("absent in the test")
        else:
            base[name] = Reading(float(value), t)
    if fields:
        raise TypeError(f"unknown observation fields {sorted(fields)}")
    return Observation(time=t, power_source=power_source, **base)
