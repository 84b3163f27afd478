"""Our energy against time-averaged quality loss as the quality budget is swept (the energy–quality
curve), and how results move with the simulator's FLOPs→time and FLOPs→power mappings
(docs/BENCHMARKS.md, issues 5 and 13).

    python benchmarks/energy_quality.py --trace ../shared/data/traces/azure_llm_conv_2023.csv
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_inputs

from thermostat.control import temperature_bounds
from thermostat.sim.compare import prepare, run
from thermostat.sim.run import SimConfig
from thermostat.sim.truth import Truth

BUDGETS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)  # maxQualityLossPercent


def main() -> None:
    curve_only = "--curve-only" in sys.argv  # the energy-quality curve without the truth variations
    if curve_only:
        sys.argv.remove("--curve-only")
    inputs = load_inputs(__doc__.splitlines()[0])
    profile, base, trace = inputs.profile, inputs.spec, inputs.trace
    print(f"profile sha256 {profile.sha256}")
    setting = prepare(trace, base, profile, SimConfig())
    hpa = run("hpa", setting).metrics["energy_kwh"]
    oracle = run("oracle", setting).metrics["energy_kwh"]
    print(f"hpa {hpa:.3f} kWh, oracle {oracle:.3f} kWh")
    print("| budget (loss %) | T_op | floor | windows in SLO | energy kWh | vs hpa | vs oracle | quality loss % mean |")
    print("|---|---|---|---|---|---|---|---|")
    for budget in BUDGETS:
        quality = base.quality.model_copy(update={"max_quality_loss_percent": budget})
        spec = base.model_copy(update={"quality": quality})
        bounds = temperature_bounds(spec, profile)
        m = run("thermostat", replace(setting, spec=spec)).metrics
        print(
            f"| {budget:g} | {bounds.t_op:.3f} | {bounds.t_lo:.3f} | {m['slo_attainment_windows']:.2%} | "
            f"{m['energy_kwh']:.3f} | {m['energy_kwh'] / hpa:.3f}x | {m['energy_kwh'] / oracle:.3f}x | "
            f"{m['quality_loss_mean']:.2f} |",
            flush=True,
        )
    if curve_only:
        return
    print()
    print("| truth | hpa kWh | oracle kWh | thermostat kWh | thermostat windows | thermostat vs hpa |")
    print("|---|---|---|---|---|---|")
    for label, truth in (
        ("alpha 0.0 (time ∝ FLOPs)", Truth(flops_time_alpha=0.0)),
        ("alpha 0.6 (time mostly fixed)", Truth(flops_time_alpha=0.6)),
        ("power exponent 0.5", Truth(power_exponent=0.5)),
        ("power exponent 1.0 (linear)", Truth(power_exponent=1.0)),
    ):
        varied = prepare(trace, base, profile, SimConfig(truth=truth))
        h, o, t = (run(n, varied).metrics for n in ("hpa", "oracle", "thermostat"))
        print(
            f"| {label} | {h['energy_kwh']:.3f} | {o['energy_kwh']:.3f} | {t['energy_kwh']:.3f} | "
            f"{t['slo_attainment_windows']:.2%} | {t['energy_kwh'] / h['energy_kwh']:.2f}x |"
        )


if __name__ == "__main__":
    main()
