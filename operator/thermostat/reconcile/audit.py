"""The complete audit trail: one JSON log line per decision, and the savings ledger's series.

Status keeps the newest decisions (folded); the log keeps them all. Each line is logged by
``thermostat.audit`` at INFO with ``object`` (namespace, name) and ``decision`` (the status record's
fields, camelCase); with ``THERMOSTAT_LOG_FORMAT=json`` (the default) the formatter writes them as
keys of the line's JSON object, which ``thermostat explain --log`` reads back (docs/audit.md).
"""

from __future__ import annotations

import logging

from thermostat.api.status import DecisionRecord, Savings
from thermostat.telemetry import AUDIT_LOGGER, record_savings

logger = logging.getLogger(AUDIT_LOGGER)


def log_decision(namespace: str, name: str, record: DecisionRecord) -> None:
    """One line per decision: prose for people, the record as structured fields for tools."""
    logger.info(
        "decision %s/%s: %s, %s: %s",
        namespace,
        name,
        record.rule or "-",
        record.outcome or "-",
        record.reason,
        extra={
            "audit_object": {"namespace": namespace, "name": name, "kind": "RoutedModel"},
            "audit_decision": record.model_dump(mode="json", by_alias=True, exclude_none=True),
        },
    )


def publish_savings(namespace: str, name: str, before: Savings | None, after: Savings | None) -> None:
    """The ledger's increments of this run as counters, its since-creation figures as gauges."""
    if after is None:
        return
    used_before = before.total.energy_joules if before else 0.0
    exact_before = before.total.exact_energy_joules if before else 0.0
    record_savings(
        namespace,
        name,
        used_j=after.total.energy_joules - used_before,
        exact_j=after.total.exact_energy_joules - exact_before,
        saved_j=after.total.saved_joules,
        quality_percent=after.total.quality_loss_percent_mean,
        estimated=after.estimated,
    )
