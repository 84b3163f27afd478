"""The operator's own observability: Prometheus metrics about its loop, and JSON logs.

Metric names follow Prometheus conventions (``_total``, ``_seconds``) under ``thermostat_operator_``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

DECISIONS = Counter(
    "thermostat_operator_decisions_total", "Control decisions made", ["namespace", "routedmodel", "mode", "held"]
)
ACTUATIONS = Counter(
    "thermostat_operator_actuations_total", "Changes applied to a knob", ["namespace", "routedmodel", "knob"]
)
QUERY_ERRORS = Counter(
    "thermostat_operator_metrics_query_errors_total",
    "Signals that could not be read",
    ["namespace", "routedmodel", "reason"],
)
LOOP_DURATION = Histogram(
    "thermostat_operator_loop_duration_seconds",
    "Duration of one control run (observe, decide, apply, status)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SINCE_GOOD_OBSERVATION = Gauge(
    "thermostat_operator_seconds_since_good_observation",
    "Seconds since the last run with every needed signal fresh",
    ["namespace", "routedmodel"],
)

# The objectives and the law's view of them, so alert rules and dashboards compare like with like
# (the chart's PrometheusRule and Grafana dashboard read these beside the runtime series).
SLO_TARGET = Gauge("thermostat_operator_slo_target_seconds", "The SLO's latency target", ["namespace", "routedmodel"])
LATENCY = Gauge(
    "thermostat_operator_latency_seconds", "The SLO's latency quantile as last observed", ["namespace", "routedmodel"]
)
POWER_BUDGET = Gauge("thermostat_operator_power_budget_watts", "The GPU power budget", ["namespace", "routedmodel"])
POWER = Gauge("thermostat_operator_power_watts", "GPU power as last observed", ["namespace", "routedmodel"])


# The savings ledger (status.savings, docs/audit.md): counters of the energy used and of the exact-quality
# counterfactual, so rate() and increase() give any window; the since-creation figures as gauges.
ENERGY_USED = Counter(
    "thermostat_operator_energy_joules_total",
    "GPU energy used, as accounted by the savings ledger",
    ["namespace", "routedmodel", "estimated"],
)
ENERGY_EXACT = Counter(
    "thermostat_operator_exact_energy_joules_total",
    "Estimated energy of the same load at exact quality (T = 1) with the replicas the law would need",
    ["namespace", "routedmodel", "estimated"],
)
ENERGY_SAVED = Gauge(
    "thermostat_operator_energy_saved_joules",
    "Exact-quality energy minus energy used, since the ledger began",
    ["namespace", "routedmodel", "estimated"],
)
QUALITY_SPENT = Gauge(
    "thermostat_operator_quality_loss_percent_mean",
    "Quality spent: mean loss per generated token since the ledger began, percent",
    ["namespace", "routedmodel"],
)
AUDIT_LOGGER = "thermostat.audit"


def record_savings(
    namespace: str, name: str, *, used_j: float, exact_j: float, saved_j: float, quality_percent: float,
    estimated: bool,
) -> None:  # fmt: skip
    """Publish one run's ledger increments (``used_j``, ``exact_j``) and the since-creation figures."""
    label = str(estimated).lower()
    ENERGY_USED.labels(namespace, name, label).inc(max(0.0, used_j))
    ENERGY_EXACT.labels(namespace, name, label).inc(max(0.0, exact_j))
    ENERGY_SAVED.labels(namespace, name, label).set(saved_j)
    QUALITY_SPENT.labels(namespace, name).set(quality_percent)


def record_objectives(
    namespace: str,
    name: str,
    *,
    target_s: float,
    budget_w: float | None,
    latency_s: float | None,
    power_w: float | None,
) -> None:
    """Publish a RoutedModel's objectives and last observation; an unknown figure is absent, not zero."""
    for gauge, value in ((SLO_TARGET, target_s), (POWER_BUDGET, budget_w), (LATENCY, latency_s), (POWER, power_w)):
        if value is None:
            with contextlib.suppress(KeyError):  # never set: nothing to remove
                gauge.remove(namespace, name)
        else:
            gauge.labels(namespace, name).set(value)


def serve_metrics(port: int, host: str) -> None:
    """Expose the operator's /metrics (port 0: not served)."""
    if port:
        start_http_server(port, addr=host)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and Kopf's object reference if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        k8s = getattr(record, "k8s_ref", None)
        if isinstance(k8s, dict):
            entry["object"] = {key: k8s.get(key) for key in ("namespace", "name", "kind") if k8s.get(key)}
        for key in ("object", "decision"):  # the audit trail's lines carry these (docs/audit.md)
            value = getattr(record, f"audit_{key}", None)
            if isinstance(value, dict):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(*, json_logs: bool, level: str) -> None:
    """Route every logger (Kopf's included) to stderr, as JSON lines or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter() if json_logs else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The Kubernetes client logs every request at DEBUG; keep it quiet unless asked.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
