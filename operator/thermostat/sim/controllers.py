"""Controllers the simulator can run: ours (the real law) and the baselines, by name.

Baselines follow their documented algorithms:
- ``hpa``: Kubernetes' HorizontalPodAutoscaler replica calculator on a per-pod metric (the
  generated-token rate the law also sees) with an average-value target of 0.6 of the profile's
  peak throughput at T = 1; 10% tolerance; pods not yet ready are set aside and, when scaling up,
  counted at zero use (as ``calcPlainMetricReplicas`` does); default behaviour: scale up by
  max(100%, 4 pods) per 15 s with no stabilization, scale down by 100% per 15 s after a 300 s
  stabilization window; T = 1.
- ``keda``: KEDA's Prometheus scaler on the p95 latency query, metricType Value, threshold 0.8 of
  the SLO target, through the same HPA algorithm (ratio × ready pods).
- ``static``: peak provisioning; ``temperature-only``: the law with replicas pinned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from thermostat.api.spec import RoutedModelSpec
from thermostat.control import Observation, Profile, decide
from thermostat.control.signals import load_value, reading_value

HPA_TOLERANCE = 0.1
HPA_SCALE_DOWN_WINDOW_S = 300.0


class Controller(Protocol):
    """What the simulator drives: one decision per control period."""

    name: str

    @property
    def shadow_fraction(self) -> float:
        """Share of requests the pods shadow (only the law measures quality)."""
        ...

    def decide(self, observation: Observation, now: float) -> tuple[int, float]:
        """(replicas, routing temperature) wanted now."""
        ...


@dataclass
class LawController:
    """The real control law, with its memory kept between periods."""

    spec: RoutedModelSpec
    profile: Profile
    name: str = "thermostat"
    memory: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def shadow_fraction(self) -> float:
        return self.spec.quality.shadow_fraction

    def decide(self, observation: Observation, now: float) -> tuple[int, float]:
        decision = decide(observation, self.spec, self.memory, now, profile=self.profile)
        self.memory = decision.memory
        return decision.replicas, decision.routing_temperature


@dataclass
class StaticController:
    """Fixed replicas at T = 1."""

    replicas: int
    name: str = "static"
    shadow_fraction: float = 0.0

    def decide(self, observation: Observation, now: float) -> tuple[int, float]:
        return self.replicas, 1.0


@dataclass
class HpaController:
    """Kubernetes HPA on a per-pod metric; ``metric`` picks the signal (see module docstring)."""

    spec: RoutedModelSpec
    target: float  # per-pod average value (tokens/s), or the threshold (s) for a Value metric
    name: str = "hpa"
    value_metric: bool = False  # KEDA-style Value metric (latency): ratio = value / target
    shadow_fraction: float = 0.0
    history: list[tuple[float, int]] = field(default_factory=list)

    def _usage(self, observation: Observation) -> float | None:
        if self.value_metric:
            return reading_value(observation.latency_s)
        return load_value(observation.token_rate)

    def _raw(self, observation: Observation) -> int:
        current, ready = observation.replicas, observation.ready_replicas
        usage = self._usage(observation)
        if usage is None or ready == 0:
            return current  # no metric: HPA keeps the scale
        if self.value_metric:
            ratio = usage / self.target
            return current if abs(ratio - 1.0) <= HPA_TOLERANCE else math.ceil(ratio * ready)
        ratio = usage / (self.target * ready)
        unready = current - ready
        if unready > 0 and ratio > 1.0:  # scale-up with unready pods: count them at zero use
            new_ratio = usage / (self.target * current)
            if abs(new_ratio - 1.0) <= HPA_TOLERANCE or new_ratio < 1.0:
                return current
            return math.ceil(new_ratio * current)
        if abs(ratio - 1.0) <= HPA_TOLERANCE:
            return current
        return math.ceil(ratio * ready)

    def decide(self, observation: Observation, now: float) -> tuple[int, float]:
        current = observation.replicas
        raw = min(max(self._raw(observation), self.spec.replicas.min), self.spec.replicas.max)
        self.history = [(t, n) for t, n in self.history if now - t <= HPA_SCALE_DOWN_WINDOW_S] + [(now, raw)]
        wanted = raw
        if raw < current:  # scale-down stabilization: the highest recommendation of the window
            wanted = min(current, max(n for _, n in self.history))
        wanted = min(wanted, max(2 * current, current + 4))  # default scale-up policy per 15 s
        return wanted, 1.0


def hpa(spec: RoutedModelSpec, profile: Profile, target_fraction: float = 0.6, name: str = "hpa") -> HpaController:
    """HPA at ``target_fraction`` of the profile's peak per-replica throughput at T = 1."""
    peak = profile.tokens_per_s(1.0, profile.max_batch)
    return HpaController(spec, target=target_fraction * peak, name=name)


def keda(spec: RoutedModelSpec, threshold_fraction: float = 0.8) -> HpaController:
    """KEDA: the p95 latency query, metricType Value, through the HPA algorithm."""
    return HpaController(spec, target=threshold_fraction * spec.slo.target_seconds, name="keda", value_metric=True)
