"""The bounded decision history in status: one record per change of advice, newest last.

A run that gives the same advice for the same rule as the newest record folds into it (``repeats``,
``until``, ``lastReason``) instead of taking a slot: steady or held hours cost one entry, and
``thermostat explain`` can still say how long nothing changed and why. The operator's log keeps
every run's record (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from thermostat.api.status import MAX_DECISIONS, DecisionRecord
from thermostat.control.rules import TEMPERATURE_DECIMALS


def is_news(history: Sequence[DecisionRecord], record: DecisionRecord) -> bool:
    """A record is worth its own entry when its kind, settings, outcome or rule differ from the last."""
    if not history:
        return True
    last = history[-1]
    return _key(last) != _key(record)


def _key(record: DecisionRecord) -> tuple[object, ...]:
    temperature = round(record.routing_temperature, TEMPERATURE_DECIMALS)  # as the ConfigMap carries it
    return (record.kind, temperature, record.replicas, record.applied, record.rule)


def fold(last: DecisionRecord, record: DecisionRecord) -> DecisionRecord:
    """``last`` with ``record`` counted as one more repeat of it."""
    return last.model_copy(update={"repeats": last.repeats + 1, "until": record.time, "last_reason": record.reason})


def record_decision(
    history: Sequence[DecisionRecord], record: DecisionRecord, *, limit: int = MAX_DECISIONS
) -> list[DecisionRecord]:
    """The history with ``record`` appended when it is news (else folded into the newest), trimmed to ``limit``."""
    entries = list(history)
    if is_news(entries, record):
        entries.append(record)
    else:
        entries[-1] = fold(entries[-1], record)
    return entries[-limit:]
