"""A small plant for the law's scenario tests: replicas that turn ready after a cold start, and
latency/power from a response model (the profile's, optionally scaled to stand for a different truth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from observations import observed

from thermostat.api import RoutedModelSpec
from thermostat.control import Decision, Observation, Profile, decide
from thermostat.control.model import OVERLOAD_LATENCY_S, ResponseModel
from thermostat.profiles import load_profile, runtime_data_dir

# The scenario tests are written against the assumed H100 profile, whatever measured profile is committed
# beside it (default_profile_path() prefers a measured one).
ASSUMED_PROFILE_PATH = runtime_data_dir() / "profiles" / "assumed.json"


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
    cold_start_s: float = 60.0
    capacity_scale: float = 1.0
    tokens_per_request: float = 200.0
    now: float = 0.0
    memory: dict[str, Any] | None = None
    ready_at: list[float] = field(default_factory=list)
    history: list[Decision] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ready_at = [self.now] * self.replicas

    @property
    def truth(self) -> ResponseModel:
        return ResponseModel(
            self.profile, capacity_scale=self.capacity_scale, tokens_per_request=self.tokens_per_request
        )

    def ready(self) -> int:
        return sum(1 for t in self.ready_at if t <= self.now)

    def observe(self, rate: float, *, drop: tuple[str, ...] = ()) -> Observation:
        ready = self.ready()
        latency = min(self.truth.latency_s(rate / max(ready, 1), self.temperature), 120.0)
        values: dict[str, Any] = {
            "latency_s": latency,
            "request_rate": rate,
            "token_rate": rate * self.tokens_per_request,
            "power_w": self.truth.total_power_w(rate, self.temperature, ready, self.replicas - ready),
        }
        for name, key in (("latency", "latency_s"), ("requestRate", "request_rate"), ("power", "power_w")):
            if name in drop:
                values[key] = None
        return observed(
            time=self.now,
            routing_temperature=self.temperature,
            replicas=self.replicas,
            ready_replicas=ready,
            power_source="estimate",
            **values,
        )

    def step(self, rate: float, *, drop: tuple[str, ...] = ()) -> Decision:
        decision = decide(self.observe(rate, drop=drop), self.spec, self.memory, self.now, profile=self.profile)
        self.apply(decision)
        self.now += self.spec.behavior.period_seconds
        return decision

    def apply(self, decision: Decision) -> None:
        self.memory = decision.memory
        self.temperature = decision.routing_temperature
        if decision.replicas > self.replicas:
            self.ready_at += [self.now + self.cold_start_s] * (decision.replicas - self.replicas)
        else:
            self.ready_at = sorted(self.ready_at)[: decision.replicas]
        self.replicas = decision.replicas
        self.history.append(decision)

    def latency_now(self, rate: float) -> float:
        return min(self.truth.latency_s(rate / max(self.ready(), 1), self.temperature), OVERLOAD_LATENCY_S)
