"""The savings ledger's counterfactual against simulator runs at exact quality on the same trace (issue 16).

    python benchmarks/ledger_check.py --trace ../shared/data/traces/azure_llm_conv_2023.csv

For each case the real law runs with its audit and ledger kept as the operator keeps them
(``thermostat.sim.audited``); the same law pinned to T = 1 (quality.minRoutingTemperature = 1) runs
on the same trace, and so does the clairvoyant oracle (exact quality, fewest replicas one cold start
ahead). The table compares the ledger's energy used with the simulator's meter, and its
counterfactual with the exact-quality runs; the saving the ledger reports with the one the two
runs show. Cases: the whole trace at the benchmark's x3, the same under --perturb (a truth that is
not the law's model: the power correction in memory must carry the counterfactual), and x1.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "runtime"), str(ROOT / "tools")]

from thermostat.profiles import load_profile  # noqa: E402
from thermostat.sim.audited import AuditedLawController  # noqa: E402
from thermostat.sim.compare import prepare, run  # noqa: E402
from thermostat.sim.controllers import LawController  # noqa: E402
from thermostat.sim.report import load_spec  # noqa: E402
from thermostat.sim.run import SimConfig, simulate  # noqa: E402
from thermostat.sim.trace import load_azure_trace, scale_rate  # noqa: E402
from thermostat.sim.truth import Truth, perturbed  # noqa: E402

ASSUMED_PROFILE = ROOT / "runtime" / "thermostat_runtime" / "profiles" / "assumed.json"
CASES = {"x3": (3.0, False), "x3 perturbed": (3.0, True), "x1": (1.0, False)}
KWH = 3.6e6


def check(name: str, trace_path: str, spec_path: Path, rate: float, perturb: bool) -> str:
    profile, spec = load_profile(ASSUMED_PROFILE), load_spec(spec_path)
    trace = scale_rate(load_azure_trace(trace_path), rate)
    config = SimConfig(truth=perturbed(Truth()) if perturb else Truth())
    exact_spec = spec.model_copy(update={"quality": spec.quality.model_copy(update={"min_routing_temperature": 1.0})})
    audited = AuditedLawController(spec, profile)
    routed = simulate(trace, spec, profile, audited, config)
    pinned = simulate(trace, exact_spec, profile, LawController(exact_spec, profile, name="exact"), config)
    oracle = run("oracle", prepare(trace, spec, profile, replace(config, calibration_s=900.0)))
    assert audited.status is not None
    assert audited.status.savings is not None
    total = audited.status.savings.total
    covered = total.accounted_seconds / trace.duration_s
    used, cf = total.energy_joules / KWH, total.exact_energy_joules / KWH
    meter, at_one, best = (r.metrics["energy_kwh"] * covered for r in (routed, pinned, oracle))
    return (
        f"| {name} | {covered:.3f} | {used:.2f} | {meter:.2f} ({used / meter - 1:+.1%}) | {cf:.2f} "
        f"| {at_one:.2f} ({cf / at_one - 1:+.1%}) | {best:.2f} ({cf / best - 1:+.1%}) "
        f"| {total.saved_joules / KWH:.2f} | {at_one - meter:.2f} | {total.quality_loss_percent_mean:.2f} "
        f"| {routed.metrics['quality_loss_mean']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", required=True)
    parser.add_argument("--spec", default=str(ROOT / "benchmarks" / "chat-azure.yaml"))
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="repeatable; all when omitted")
    args = parser.parse_args()
    print("| case | covered | ledger used kWh | simulated used kWh | ledger exact kWh | law at T=1 kWh "
          "| oracle kWh | ledger saved kWh | saved (T=1 run − used) kWh | ledger quality % | simulated quality % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.case or list(CASES):
        started = time.perf_counter()
        rate, perturb = CASES[name]
        print(check(name, args.trace, Path(args.spec), rate, perturb), flush=True)
        print(f"<!-- {name}: {time.perf_counter() - started:.0f} s -->", file=sys.stderr)


if __name__ == "__main__":
    main()
