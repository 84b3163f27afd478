"""The one interface every metrics source implements, and the typed errors it raises.

A source reads one ``Signal`` for one RoutedModel (its ``Scope``) and returns a ``Sample`` or raises
a ``MetricsError``; it never returns zero for "don't know". Samples and failures become the law's
``Reading | Idle | Missing`` in one place (``thermostat.metrics.collect``), not in each source, as
KEDA's fallback package does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from thermostat.control.types import Signal


@dataclass(frozen=True)
class Scope:
    """Which pods a query is about: the scoping labels the scrape configuration sets (DESIGN §3)."""

    namespace: str
    routedmodel: str


@dataclass(frozen=True)
class Sample:
    """One signal's value as a source answered it, how old its newest underlying sample is, and where
    power came from."""

    value: float
    age_s: float | None = None  # None when the source cannot tell (e.g. an overridden query)
    power_source: str | None = None  # "nvml", "dcgm" or "estimate", for the power signal


class MetricsError(Exception):
    """A signal could not be read; ``reason`` is the CamelCase word used in conditions."""

    reason = "MetricsError"


class SourceUnavailableError(MetricsError):
    """The metrics backend did not answer (connection refused, timeout, 5xx)."""

    reason = "SourceUnavailable"


class CredentialsRejectedError(SourceUnavailableError):
    """Prometheus refused the credentials (HTTP 401/403): every query would, so none is tried again."""

    reason = "CredentialsRejected"


class TlsVerificationError(SourceUnavailableError):
    """Prometheus' certificate is not signed by the CA the operator was given (or the system's)."""

    reason = "TLSVerificationFailed"


class QueryRejectedError(MetricsError):
    """The backend refused the query (bad PromQL in an override, 4xx, authentication)."""

    reason = "QueryRejected"


class NoDataError(MetricsError):
    """The query returned no series: nothing scraped yet, wrong labels, or the target is gone."""

    reason = "NoData"


class NotANumberError(MetricsError):
    """The query returned NaN or an infinity (e.g. a quantile over a window without requests)."""

    reason = "NotANumber"


class StaleDataError(MetricsError):
    """The newest sample behind the signal is older than the spec's metricsMaxAgeSeconds."""

    reason = "Stale"


class MetricsSource(Protocol):
    """Reads signals for a RoutedModel. Implementations are synchronous; callers run them off-loop."""

    def read(self, signal: Signal | str, scope: Scope, *, now: float) -> Sample:
        """The signal's current value, or a ``MetricsError`` saying why there is none."""
        ...
