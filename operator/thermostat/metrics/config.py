"""Which Prometheus a RoutedModel is observed through, and how: one pure, comparable configuration.

The reconcile keeps one ``PrometheusMetrics`` per RoutedModel and builds a new one only when this
configuration changes (a spec edit, a rotated credentials Secret).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from thermostat.api.spec import LatencySlo, MetricsSpec, RoutedModelSpec
from thermostat.metrics.prometheus import PrometheusAuth, PrometheusMetrics


@dataclass(frozen=True)
class PrometheusConfig:
    """Everything a Prometheus source is built from."""

    url: str
    slo: LatencySlo
    metrics: MetricsSpec
    auth: PrometheusAuth | None
    timeout_s: float
    max_age_s: float

    @property
    def key(self) -> str:
        """Equal for equal configurations (the spec models are not hashable)."""
        parts = [self.url, repr(self.auth), self.timeout_s, self.max_age_s]
        parts += [self.slo.model_dump(mode="json"), self.metrics.model_dump(mode="json")]
        return json.dumps(parts, sort_keys=True)

    def build(self) -> PrometheusMetrics:
        return PrometheusMetrics(
            self.url, slo=self.slo, metrics=self.metrics, auth=self.auth, timeout_s=self.timeout_s,
            max_age_s=self.max_age_s,
        )  # fmt: skip


def prometheus_config(
    spec: RoutedModelSpec, *, auth: PrometheusAuth | None, default_url: str | None, timeout_ceiling_s: float
) -> PrometheusConfig:
    """The spec's Prometheus settings, the operator's URL where the spec has none.

    ``spec.metrics.prometheus.timeoutSeconds`` is the query timeout, capped only by the operator's
    ``THERMOSTAT_PROMETHEUS_TIMEOUT_SECONDS`` (60 s unless an administrator lowers it).
    """
    prom = spec.metrics.prometheus
    url = prom.url or default_url
    if url is None:
        raise ValueError("no Prometheus URL: set spec.metrics.prometheus.url or THERMOSTAT_PROMETHEUS_URL")
    return PrometheusConfig(
        url=url,
        slo=spec.slo,
        metrics=spec.metrics,
        auth=auth,
        timeout_s=min(prom.timeout_seconds, timeout_ceiling_s),
        max_age_s=float(spec.behavior.metrics_max_age_seconds),
    )
