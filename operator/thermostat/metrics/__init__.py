"""Observation of a RoutedModel's pods: one ``MetricsSource`` protocol, a Prometheus implementation.

``collect(source, scope, now=...)`` reads every signal the law needs and reports the missing ones.
The PromQL templates are documented in docs/metrics.md ("Operator queries").
"""

from thermostat.metrics.collect import OBSERVED, Signals, collect
from thermostat.metrics.source import (
    MetricsError,
    MetricsSource,
    NoDataError,
    NotANumberError,
    QueryRejectedError,
    Reading,
    Scope,
    SourceUnavailableError,
    StaleDataError,
)

__all__ = [
    "OBSERVED",
    "MetricsError",
    "MetricsSource",
    "NoDataError",
    "NotANumberError",
    "QueryRejectedError",
    "Reading",
    "Scope",
    "Signals",
    "SourceUnavailableError",
    "StaleDataError",
    "collect",
]
