"""Build the law's Observation: the Deployment's replicas, the ConfigMap's temperature, the metrics.

Also owns the per-RoutedModel Prometheus source cache, rebuilt when the spec's metrics settings or
the credentials Secret change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from thermostat.api.spec import RoutedModelSpec
from thermostat.control.signals import Missing, Reading, SignalValue
from thermostat.control.types import Observation, Signal
from thermostat.kube import Kube
from thermostat.metrics import Scope, Signals, StaleDataError, collect
from thermostat.metrics.prometheus import PrometheusAuth, PrometheusMetrics
from thermostat.metrics.templates import QUEUE_DEPTH
from thermostat.settings import OperatorSettings


@dataclass(frozen=True)
class Workload:
    """What the Deployment says now."""

    name: str
    replicas: int  # spec.replicas
    ready_replicas: int
    selector: dict[str, str]

    @classmethod
    def from_deployment(cls, deployment: dict[str, Any]) -> Workload:
        spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
        replicas = spec.get("replicas")
        return cls(
            name=deployment["metadata"]["name"],
            replicas=1 if replicas is None else int(replicas),
            ready_replicas=int(status.get("readyReplicas") or 0),
            selector=dict((spec.get("selector") or {}).get("matchLabels") or {}),
        )


def why_missing(signals: Signals) -> dict[str, str]:
    """The law's ``missing`` map: ``stale`` for stale data (the law's word), else reason and detail."""
    out = {}
    for name, error in signals.errors.items():
        out[name] = "stale" if isinstance(error, StaleDataError) else f"{error.reason}: {str(error)[:160]}"
    for name, text in signals.missing.items():
        out.setdefault(name, text[:200])
    return out


def build_observation(
    now: float, temperature: float, workload: Workload, signals: Signals, *, window_s: float = 0.0
) -> Observation:
    """The Observation the law decides on: each signal a Reading, or Missing with why.

    (Idle, the known zero of an empty window, comes with the metrics layer of the reconcile pipeline.)
    """
    values, why = signals.values, why_missing(signals)

    def signal(name: str) -> SignalValue:
        if name in values:
            return Reading(values[name], now)
        return Missing(why.get(name, "missing"))

    return Observation(
        time=now,
        routing_temperature=temperature,
        replicas=workload.replicas,
        ready_replicas=workload.ready_replicas,
        window_s=window_s,
        latency_s=signal(Signal.LATENCY),
        request_rate=signal(Signal.REQUEST_RATE),
        served_rate=signal(Signal.SERVED_RATE),
        shed_rate=signal(Signal.SHED_RATE),
        token_rate=signal(Signal.TOKEN_RATE),
        power_w=signal(Signal.POWER),
        energy_rate_w=signal(Signal.ENERGY),
        quality_kl_nats=signal(Signal.QUALITY_KL),
        shadow_token_rate=signal(Signal.SHADOW_TOKENS),
        quality_agreement=signal(Signal.QUALITY),
        queue_depth=signal(QUEUE_DEPTH),
        power_source=signals.power_source if Signal.POWER in values else None,
    )


class MetricsSources:
    """One Prometheus source per RoutedModel, kept while its settings stay the same."""

    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube, self.settings = kube, settings
        self._sources: dict[tuple[str, str], tuple[str, PrometheusMetrics]] = {}

    def source_for(self, namespace: str, name: str, spec: RoutedModelSpec) -> PrometheusMetrics:
        """The source for this spec; raises LookupError/ValueError when its credentials are unusable."""
        prom = spec.metrics.prometheus
        url = prom.url or self.settings.prometheus_url
        if url is None:
            raise ValueError("no Prometheus URL: set spec.metrics.prometheus.url or THERMOSTAT_PROMETHEUS_URL")
        auth = None
        if prom.auth_secret_ref is not None:
            data = self.kube.read_secret_data(namespace, prom.auth_secret_ref.name)
            auth = PrometheusAuth.from_secret_data(data, insecure_skip_verify=prom.insecure_skip_verify)
        settings: list[Any] = [url, repr(auth), spec.metrics.model_dump(mode="json"), spec.slo.model_dump(mode="json")]
        settings.append(spec.behavior.metrics_max_age_seconds)
        key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()
        cached = self._sources.get((namespace, name))
        if cached is None or cached[0] != key:
            timeout = min(prom.timeout_seconds, self.settings.prometheus_timeout_seconds)
            max_age_s = spec.behavior.metrics_max_age_seconds
            source = PrometheusMetrics(
                url, slo=spec.slo, metrics=spec.metrics, auth=auth, timeout_s=timeout, max_age_s=max_age_s
            )
            self._sources[(namespace, name)] = (key, source)
            return source
        return cached[1]

    def observe(self, namespace: str, name: str, spec: RoutedModelSpec, *, now: float) -> Signals:
        """Every signal for the RoutedModel; an unusable source makes them all missing, with why."""
        try:
            source = self.source_for(namespace, name, spec)
        except (LookupError, ValueError) as error:
            signals = Signals()
            for signal in (Signal.LATENCY, Signal.REQUEST_RATE):
                signals.missing[signal] = f"MetricsSourceUnusable: {error}"
            return signals
        return collect(source, Scope(namespace=namespace, routedmodel=name), now=now)

    def forget(self, namespace: str, name: str) -> None:
        self._sources.pop((namespace, name), None)
