"""What one control run saw, decided and did: the input of status assembly and of the audit record."""

from __future__ import annotations

from dataclasses import dataclass, field

from thermostat.api.status import RolloutStatus, Settings
from thermostat.control.types import Decision, Observation, Verdict
from thermostat.status.conditions import Health


@dataclass(frozen=True)
class RunOutcome:
    """What one control run saw, decided and did."""

    now: float
    generation: int | None
    current: Settings  # what is in force after the run
    health: Health
    observation: Observation | None = None
    decision: Decision | None = None
    applied: bool = False  # whether the decision was applied (Enforce, not held, no conflict)
    memory_version: int = 1
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # extra conditions, e.g. Conflict
    before: Settings | None = None  # in force when the run started
    rollout: RolloutStatus | None = None  # status.rollout (the run decides whether it is kept)
