"""The exact-quality counterfactual: what serving the same load at T = 1 would take (the savings ledger).

The replicas are the ones the law itself would need with no routing: its replica planner with the
operating point, ceiling and floor all at 1 (the same burst reserve, SLO margin and bounds), anchored
on the replicas actually running: what is in force plus what the plan at T = 1 adds over the plan at
the law's own bounds. The anchor carries what the model alone does not see (stabilization windows
holding replicas, the observation overruling the model, pods starting), and the model's absolute
error cancels in the difference, as in the law's scale-down consent. Their power is the law's
response model at T = 1 *with the corrections learned in memory*: the measured power correction
scales the dynamic power exactly as it does for the law's own predictions. It is an estimate (the
counterfactual is never measured); docs/BENCHMARKS.md checks it against the same law pinned to
T = 1 on the same trace, in the simulator.
"""

from __future__ import annotations

from thermostat.api.spec import RoutedModelSpec
from thermostat.control.bounds import Bounds
from thermostat.control.learning import model_for
from thermostat.control.memory import LawMemory
from thermostat.control.profile import Profile
from thermostat.control.replicas import plan_replicas
from thermostat.control.types import ExactCounterfactual

EXACT = 1.0


def exact_counterfactual(
    demand: float,
    *,
    spec: RoutedModelSpec,
    mem: LawMemory,
    profile: Profile,
    reserve: float,
    in_force: float,
    replicas: int,
    routed_plan: int,
) -> ExactCounterfactual:
    """Serving ``demand`` requests/s at T = 1: the replicas (``replicas`` in force, planned
    ``routed_plan`` at the law's bounds, plus what T = 1 adds), their corrected power, and the
    quality loss the temperature ``in_force`` spends instead (profile, shadow-corrected)."""
    model = model_for(profile, mem, spec)
    bounds = Bounds(EXACT, EXACT, EXACT, spec.replicas.min, spec.replicas.max)
    target_s = spec.slo.target_seconds * (1.0 - spec.slo.margin_fraction)
    plan = plan_replicas(
        model, demand, bounds=bounds, target_s=target_s, limit_w=None, spec=spec, reserve=reserve, current=replicas
    )
    anchored = replicas + max(0, plan.replicas - routed_plan)
    replicas = max(1, min(spec.replicas.max, max(plan.replicas, anchored)))
    loss = profile.quality_loss_percent(in_force, mem.quality_scale)
    return ExactCounterfactual(replicas, model.total_power_w(demand, EXACT, replicas), loss)
