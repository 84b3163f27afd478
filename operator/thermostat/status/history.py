"""The bounded decision history in status: one record per change of advice, newest last."""

from __future__ import annotations

from collections.abc import Sequence

from thermostat.api.status import MAX_DECISIONS, DecisionRecord


def is_news(history: Sequence[DecisionRecord], record: DecisionRecord) -> bool:
    """A record is worth keeping when its settings or whether they were applied differ from the last."""
    if not history:
        return True
    last = history[-1]
    return (last.routing_temperature, last.replicas, last.applied) != (
        record.routing_temperature,
        record.replicas,
        record.applied,
    )


def record_decision(
    history: Sequence[DecisionRecord], record: DecisionRecord, *, limit: int = MAX_DECISIONS
) -> list[DecisionRecord]:
    """The history with ``record`` appended when it is news, trimmed to the newest ``limit`` entries.

    Steady periods repeat the same advice; keeping only changes lets twenty entries span hours.
    """
    entries = list(history)
    if is_news(entries, record):
        entries.append(record)
    return entries[-limit:]
