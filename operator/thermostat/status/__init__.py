"""Pure status logic: conditions, the Ready summary, display strings, the decision audit and its
history, the savings ledger, assembly, and the prose of ``thermostat explain``.

The handlers hand one run's outcome to ``build_status`` and write ``status_patch`` of the result in a
single patch; nothing here performs I/O or reads the clock.
"""

from thermostat.status.assemble import build_status, parse_status, rfc3339, status_observation, status_patch
from thermostat.status.audit import decision_record, rollout_records
from thermostat.status.conditions import Health, conflict_verdict, find_condition, ready_verdict, set_condition
from thermostat.status.outcome import RunOutcome

__all__ = [
    "Health",
    "RunOutcome",
    "build_status",
    "conflict_verdict",
    "decision_record",
    "find_condition",
    "parse_status",
    "ready_verdict",
    "rfc3339",
    "rollout_records",
    "set_condition",
    "status_observation",
    "status_patch",
]
