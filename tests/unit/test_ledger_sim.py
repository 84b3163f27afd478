"""The ledger's counterfactual against a simulator run at exact quality on the same trace (issue 16).

The ledger estimates, run by run, what serving the observed load at T = 1 with the replicas the law
would plan would cost. The check: the same law pinned to T = 1 (quality.minRoutingTemperature =
maxRoutingTemperature = 1) actually run on the same trace slice — the simulator's ground truth, with
its cold starts, stabilization and queues, which the estimate does not model. Figures for the whole
trace are in docs/BENCHMARKS.md (benchmarks/ledger_check.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from control_plant import assumed_profile

from thermostat.sim.audited import AuditedLawController
from thermostat.sim.controllers import LawController
from thermostat.sim.report import load_spec
from thermostat.sim.run import SimConfig, simulate
from thermostat.sim.trace import Trace, load_azure_trace, scale_rate

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT.parent / "shared" / "data" / "traces" / "azure_llm_conv_2023.csv"
JOULES_PER_KWH = 3.6e6


def trace_slice(start_s: float, end_s: float) -> Trace:
    full = scale_rate(load_azure_trace(TRACE), 3.0)
    keep = (full.arrival_s >= start_s) & (full.arrival_s < end_s)
    return Trace(full.arrival_s[keep] - start_s, full.context_tokens[keep], full.generated_tokens[keep], "slice")


@pytest.mark.skipif(not TRACE.exists(), reason="the shared Azure trace is not checked out beside the repository")
def test_the_counterfactual_matches_a_run_at_exact_quality_on_the_same_trace() -> None:
    profile, spec = assumed_profile(), load_spec(ROOT / "benchmarks" / "chat-azure.yaml")
    exact_spec = spec.model_copy(
        update={"quality": spec.quality.model_copy(update={"min_routing_temperature": 1.0})}
    )
    trace, config = trace_slice(600.0, 1800.0), SimConfig(dt_s=0.2)
    audited = AuditedLawController(spec, profile)
    routed = simulate(trace, spec, profile, audited, config)
    exact = simulate(trace, exact_spec, profile, LawController(exact_spec, profile, name="exact"), config)
    assert audited.status is not None
    ledger = audited.status.savings
    assert ledger is not None
    covered = ledger.total.accounted_seconds / trace.duration_s
    assert covered > 0.95
    # What the ledger counted as used is what the simulator metered (over the time it covered).
    used_kwh = ledger.total.energy_joules / JOULES_PER_KWH
    assert used_kwh == pytest.approx(routed.metrics["energy_kwh"] * covered, rel=0.03)
    # Its counterfactual is what running at exact quality cost (measured: -0.6% on this slice).
    assert ledger.total.exact_energy_joules / JOULES_PER_KWH == pytest.approx(
        exact.metrics["energy_kwh"] * covered, rel=0.03
    )
    # And the saving it reports has the sign and size the two runs show.
    measured_saving = exact.metrics["energy_kwh"] - routed.metrics["energy_kwh"]
    assert measured_saving > 0
    assert ledger.total.saved_joules / JOULES_PER_KWH == pytest.approx(measured_saving * covered, rel=0.15)
    assert ledger.total.quality_loss_percent_mean == pytest.approx(routed.metrics["quality_loss_mean"], abs=1.0)
