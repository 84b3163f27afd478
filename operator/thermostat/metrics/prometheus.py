"""Signals read from Prometheus with the PromQL templates, through prometheus-api-client.

Connection failures, refused queries, empty results, NaN and stale anchors each raise their own
``MetricsError``. Credentials come from a Secret's data (``token``, or ``username``/``password``, and
an optional ``ca.crt``), read by the caller and passed in as plain strings; refused credentials and
an unverifiable certificate are errors that name that Secret and what to fix.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from thermostat.api.spec import LatencySlo, MetricsSpec, PowerSource
from thermostat.control.types import Signal
from thermostat.metrics.source import (
    CredentialsRejectedError,
    NoDataError,
    NotANumberError,
    QueryRejectedError,
    Sample,
    Scope,
    SourceUnavailableError,
    StaleDataError,
    TlsVerificationError,
)
from thermostat.metrics.templates import freshness_query, render, template_for


@dataclass(frozen=True)
class PrometheusAuth:
    """How to authenticate to Prometheus and verify its certificate."""

    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_pem: str | None = None
    insecure_skip_verify: bool = False
    secret: str | None = None  # "<namespace>/<name>" of the Secret these came from, for messages

    @classmethod
    def from_secret_data(
        cls, data: dict[str, str], *, insecure_skip_verify: bool = False, secret: str | None = None
    ) -> PrometheusAuth:
        """From a Secret's decoded data; a Secret with neither token nor username, or a ca.crt that is not
        PEM, says so (naming the Secret)."""
        named = f"Secret {secret}" if secret else "the Prometheus auth Secret"
        if not data.get("token") and not data.get("username"):
            raise ValueError(f"{named} needs key `token`, or keys `username` and `password` (keys: {sorted(data)})")
        ca_pem = data.get("ca.crt") or None
        if ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise ValueError(f"key `ca.crt` of {named} is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return cls(
            bearer_token=data.get("token") or None,
            username=data.get("username") or None,
            password=data.get("password", ""),
            ca_pem=ca_pem,
            insecure_skip_verify=insecure_skip_verify,
            secret=secret,
        )

    def rejected(self, url: str, status: str) -> str:
        """What a 401/403 means, naming where the credentials came from."""
        if self.secret is None:
            return (
                f"Prometheus at {url} requires credentials (HTTP {status}): set spec.metrics.prometheus.authSecretRef"
            )
        kind = "token" if self.bearer_token else "username/password"
        return f"Prometheus at {url} refused the {kind} of Secret {self.secret} (HTTP {status}): correct it"

    def unverified(self, url: str) -> str:
        """What a failed certificate check means, naming the CA it was checked against."""
        if self.ca_pem is not None:
            return (
                f"TLS: the certificate of Prometheus at {url} is not signed by key `ca.crt` of Secret {self.secret}: "
                "put the CA that signed it there"
            )
        where = f"Secret {self.secret}" if self.secret else "a Secret named by spec.metrics.prometheus.authSecretRef"
        return f"TLS: the certificate of Prometheus at {url} is not signed by a system CA: add key `ca.crt` to {where}"

    def headers(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self.bearer_token.strip()}"} if self.bearer_token else None

    def basic(self) -> tuple[str, str] | None:
        return (self.username, self.password or "") if self.username else None

    def verify(self) -> bool | str:
        """``requests``' verify argument: False, True, or a CA bundle file written once per content."""
        if self.insecure_skip_verify:
            return False
        if not self.ca_pem:
            return True
        digest = hashlib.sha256(self.ca_pem.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"thermostat-prometheus-ca-{digest}.pem"
        if not path.exists():
            path.write_text(self.ca_pem, encoding="utf-8")
        return str(path)


def _scalar(result: list[dict[str, Any]], query: str) -> tuple[float, dict[str, str]]:
    """The value of a one-series result; several series are summed (a template without sum())."""
    if not result:
        raise NoDataError(f"no series for {query}")
    values = [float(item["value"][1]) for item in result]
    total = math.fsum(values)
    if not math.isfinite(total):
        raise NotANumberError(f"{query} is {total}")
    labels = result[0].get("metric", {}) if len(result) == 1 else {}
    return total, labels


class PrometheusMetrics:
    """A ``MetricsSource`` querying one Prometheus with the templates of a RoutedModel's spec."""

    def __init__(
        self,
        url: str,
        *,
        slo: LatencySlo,
        metrics: MetricsSpec,
        auth: PrometheusAuth | None = None,
        timeout_s: float = 5.0,
        max_age_s: float = 60.0,
    ) -> None:
        auth = auth or PrometheusAuth(insecure_skip_verify=metrics.prometheus.insecure_skip_verify)
        self.auth = auth
        session = requests.Session()
        session.verify = auth.verify()
        self.url = url.rstrip("/")
        self.slo, self.metrics, self.max_age_s = slo, metrics, max_age_s
        # No retries: a period's observation must be quick, and the next period retries anyway.
        self._client = PrometheusConnect(
            self.url,
            headers=auth.headers(),
            auth=auth.basic(),
            session=session,
            retry=Retry(total=0),
            timeout=timeout_s,  # type: ignore[arg-type,unused-ignore]  # annotated int, floats work
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query; transport and HTTP failures become typed errors."""
        try:
            result: list[dict[str, Any]] = self._client.custom_query(promql)
        except PrometheusApiClientException as error:
            text = str(error)
            if "HTTP Status Code 5" in text:
                raise SourceUnavailableError(f"Prometheus at {self.url} failed: {text[:300]}") from error
            for status in ("401", "403"):
                if f"HTTP Status Code {status}" in text:
                    raise CredentialsRejectedError(self.auth.rejected(self.url, status)) from error
            raise QueryRejectedError(f"Prometheus at {self.url} refused {promql!r}: {text[:300]}") from error
        except requests.exceptions.SSLError as error:
            raise TlsVerificationError(self.auth.unverified(self.url)) from error
        except requests.RequestException as error:
            raise SourceUnavailableError(f"Prometheus at {self.url} unreachable: {type(error).__name__}") from error
        return result

    def _age_s(self, anchor: str, scope: Scope, anchor_promql: str | None = None) -> float:
        query = freshness_query(anchor, scope, anchor_promql)
        result = self.query(query)
        if not result:
            raise StaleDataError(f"no current sample of {anchor} for {scope.namespace}/{scope.routedmodel}")
        return _scalar(result, query)[0]

    def read(self, signal: Signal | str, scope: Scope, *, now: float) -> Sample:
        """Read one signal; stale anchors and empty or NaN results raise (``now`` is unused: Prometheus' clock)."""
        template = template_for(signal, self.slo, self.metrics)
        age_s = None
        if template.anchor is not None:
            age_s = self._age_s(template.anchor, scope, template.anchor_promql)
            if age_s > self.max_age_s:
                raise StaleDataError(
                    f"newest {template.anchor} sample is {age_s:.0f}s old (limit {self.max_age_s:.0f}s)"
                )
        promql = render(template.promql, scope, self.slo)
        result = self.query(promql)
        value, labels = _scalar(result, promql)
        return Sample(value=value, age_s=age_s, power_source=self._power_source(signal, result, labels))

    def _power_source(self, signal: str, result: list[dict[str, Any]], labels: dict[str, str]) -> str | None:
        if signal != Signal.POWER:
            return None
        if self.metrics.effective_power_source == PowerSource.DCGM:
            return "dcgm"
        # Any modelled share makes the total an estimate, and the display says so.
        sources = {item.get("metric", {}).get("source") for item in result} | {labels.get("source")}
        return "estimate" if "estimate" in sources else "nvml"
