"""The exact-quality counterfactual: what serving the same load at T = 1 would take (the savings ledger).

The replicas are the ones the law itself would plan with no routing (the operating point, ceiling and
floor all at 1, the same burst reserve, SLO margin and replica bounds), and their power is the law's
response model at T = 1 *with the corrections learned in memory*: the measured power correction
scales the dynamic power exactly as it does for the law's own predictions. It is an estimate (the
counterfactual is never measured); docs/BENCHMARKS.md checks it against a simulator run at exact
quality on the same trace.
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
    demand: float, *, spec: RoutedModelSpec, mem: LawMemory, profile: Profile, reserve: float, in_force: float
) -> ExactCounterfactual:
    """The law's own replica plan at T = 1 for ``demand`` requests/s, its corrected power, and the
    quality loss the temperature ``in_force`` spends instead (profile, shadow-corrected)."""
    model = model_for(profile, mem, spec)
    bounds = Bounds(EXACT, EXACT, EXACT, spec.replicas.min, spec.replicas.max)
    target_s = spec.slo.target_seconds * (1.0 - spec.slo.margin_fraction)
    plan = plan_replicas(
        model, demand, bounds=bounds, target_s=target_s, limit_w=None, spec=spec, reserve=reserve, current=0
    )
    replicas = max(1, plan.replicas)
    loss = profile.quality_loss_percent(in_force, mem.quality_scale)
    return ExactCounterfactual(replicas, model.total_power_w(demand, EXACT, replicas), loss)
