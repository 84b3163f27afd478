"""Observation of a RoutedModel's pods: one ``MetricsSource`` protocol, a Prometheus implementation.

``collect(source, scope, now=...)`` reads every signal and returns each as ``Reading | Idle |
Missing``, decided in one place (``thermostat.metrics.collect.classify``). The PromQL templates are
documented in docs/metrics.md ("Operator queries").
"""

from thermostat.control.signals import Idle, Missing, Reading, SignalValue
from thermostat.metrics.collect import OBSERVED, Signals, classify, collect, prometheus_failed, unusable
from thermostat.metrics.config import PrometheusConfig, prometheus_config
from thermostat.metrics.source import (
    CredentialsRejectedError,
    MetricsError,
    MetricsSource,
    NoDataError,
    NotANumberError,
    QueryRejectedError,
    Sample,
    Scope,
    SourceUnavailableError,
    StaleDataError,
    TlsVerificationError,
)

__all__ = [
    "OBSERVED",
    "CredentialsRejectedError",
    "Idle",
    "MetricsError",
    "MetricsSource",
    "Missing",
    "NoDataError",
    "NotANumberError",
    "PrometheusConfig",
    "QueryRejectedError",
    "Reading",
    "Sample",
    "Scope",
    "SignalValue",
    "Signals",
    "SourceUnavailableError",
    "StaleDataError",
    "TlsVerificationError",
    "classify",
    "collect",
    "prometheus_config",
    "prometheus_failed",
    "unusable",
]
