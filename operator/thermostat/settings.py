"""The operator's settings: one validated pydantic-settings object, environment prefix ``THERMOSTAT_``.

Every field can be set as ``THERMOSTAT_<FIELD>`` (e.g. ``THERMOSTAT_PROMETHEUS_URL``); a RoutedModel's
``spec.metrics.prometheus`` overrides the Prometheus fields for that object. docs/operator.md lists them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class LogFormat(StrEnum):
    """How the operator writes its logs."""

    JSON = "json"
    TEXT = "text"


class OperatorSettings(BaseSettings):
    """Everything the operator process is configured with."""

    model_config = SettingsConfigDict(env_prefix="THERMOSTAT_", extra="ignore")

    kubeconfig: Path | None = Field(
        None, description="kubeconfig file; in-cluster config or ~/.kube/config when unset."
    )
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch (JSON list); all namespaces when empty."
    )
    prometheus_url: str | None = Field(
        None, pattern=r"^https?://", description="Default Prometheus base URL for RoutedModels without spec.metrics."
    )
    prometheus_timeout_seconds: float = Field(
        60.0, gt=0, le=60, description="Ceiling on spec.metrics.prometheus.timeoutSeconds (one PromQL query)."
    )
    metrics_port: int = Field(9102, ge=0, le=65535, description="Port of the operator's own /metrics (0 turns it off).")
    metrics_host: str = Field("0.0.0.0", description="Address the operator's /metrics binds to.")
    liveness_endpoint: str | None = Field(
        "http://0.0.0.0:8080/healthz", description="Kopf's liveness probe endpoint; empty turns it off."
    )
    peering: str | None = Field(
        None,
        description="Kopf peering name: with several operator replicas only the highest-priority one acts. "
        "Unset: standalone (one replica only).",
    )
    priority: int = Field(0, description="This replica's peering priority.")
    priority_by_start: bool = Field(
        False,
        description="Derive the peering priority from this process's start time: the replica running longest "
        "is the active one, so a replica that (re)starts never starts above an active one (the chart sets it).",
    )
    peering_lifetime_seconds: int = Field(
        60, ge=5, le=3600,
        description="How long a replica's peering record lasts without a heartbeat: a killed active "
        "replica is taken over by the next one within this plus one control period.",
    )  # fmt: skip
    identity: str | None = Field(
        None,
        description="This replica's name in the API server's audit log (User-Agent); the chart sets the pod "
        "name; unset: host name and process id.",
    )
    log_format: LogFormat = Field(LogFormat.JSON, description="json (one object per line) or text.")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Log level.")
    min_period_seconds: float = Field(
        1.0, gt=0, description="Floor on a RoutedModel's control period (protects Prometheus from 1 s loops at scale)."
    )
    profile: Path | None = Field(
        None,
        description="Routing profile JSON the law plans with; the committed profile of the shipped model when unset.",
    )
    retry_delay_seconds: float = Field(5.0, gt=0, description="Delay before retrying a failed apply of owned objects.")

    @model_validator(mode="after")
    def _one_priority_source(self) -> OperatorSettings:
        if self.priority_by_start and self.peering is None:
            raise ValueError(
                "THERMOSTAT_PRIORITY_BY_START needs THERMOSTAT_PEERING (a peering name); set it or unset both"
            )
        if self.priority_by_start and self.priority:
            raise ValueError("set THERMOSTAT_PRIORITY or THERMOSTAT_PRIORITY_BY_START, not both")
        return self

    def peering_priority(self, started_at_s: float) -> int:
        """Kopf's priority for a process started at ``started_at_s`` (Unix time): the fixed one, or
        minus the start time in milliseconds, so the earlier a replica started the higher it ranks."""
        return -int(started_at_s * 1000) if self.priority_by_start else self.priority
