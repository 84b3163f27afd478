"""The real law in the simulator with its audit trail and savings ledger kept as the operator keeps them.

Each period assembles the next status with ``thermostat.status.build_status`` exactly as a control
run does (decisions folded, ``status.savings`` accrued), on a wall clock that starts at ``epoch_s``
(the simulator's own clock starts at 0). Used to check the ledger's counterfactual against a
simulator run at exact quality (docs/BENCHMARKS.md) and to record status fixtures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from thermostat.api.status import DecisionRecord, RoutedModelStatus, Settings
from thermostat.control import MEMORY_VERSION, Observation, decide
from thermostat.sim.controllers import LawController
from thermostat.status import Health, RunOutcome, build_status, decision_record, rfc3339

EPOCH_S = 1_764_576_000.0  # 2025-12-01T08:00:00Z: any fixed origin; the ledger's days are UTC days of it

# Rewrites the observation the law sees (a metrics outage in a recorded scenario); None: as simulated.
Tamper = Callable[[Observation, float], Observation]


@dataclass
class AuditedLawController(LawController):
    """``LawController`` that also keeps the status an operator would write after each period."""

    name: str = "thermostat-audited"
    epoch_s: float = EPOCH_S
    status: RoutedModelStatus | None = None
    tamper: Tamper | None = None
    trail: list[DecisionRecord] = field(default_factory=list)  # every record, as the operator's log has them
    snapshots: dict[float, RoutedModelStatus] = field(default_factory=dict)
    snapshot_at: tuple[float, ...] = ()  # simulator times whose status is kept in ``snapshots``

    def decide(self, observation: Observation, now: float) -> tuple[int, float]:
        if self.tamper is not None:
            observation = self.tamper(observation, now)
        decision = decide(observation, self.spec, self.memory, now, profile=self.profile)
        self.memory = decision.memory
        before = Settings(routing_temperature=observation.routing_temperature, replicas=observation.replicas)
        health = Health(ready_replicas=observation.ready_replicas, replicas=decision.replicas)
        run = RunOutcome(
            now=self.epoch_s + now,
            generation=1,
            current=Settings(routing_temperature=decision.routing_temperature, replicas=decision.replicas,
                             ready_replicas=observation.ready_replicas),
            health=health,
            observation=replace(observation, time=self.epoch_s + observation.time),
            decision=decision,
            applied=not decision.held,
            memory_version=MEMORY_VERSION,
            before=before,
        )  # fmt: skip
        self.status = build_status(self.status, self.spec, run)
        record = decision_record(run, self.spec, time=rfc3339(run.now))
        if record is not None:
            self.trail.append(record)
        for t in self.snapshot_at:
            if now >= t - 1e-6 and t not in self.snapshots:
                self.snapshots[t] = self.status
        return decision.replicas, decision.routing_temperature
