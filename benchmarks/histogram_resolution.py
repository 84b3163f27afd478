"""What the runtime's histogram buckets cost the law: the benchmark hour with the contract's buckets
(… 5, 10, 20, 30, 60 s) and with 1-second buckets up to 60 s (docs/BENCHMARKS.md, issue 5).

    python benchmarks/histogram_resolution.py --trace ../shared/data/traces/azure_llm_conv_2023.csv
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_inputs

from thermostat.sim.compare import prepare, run
from thermostat.sim.run import SimConfig

FINE = (0.05, 0.1, 0.25, 0.5, 0.75, *(float(s) for s in range(1, 61)))


def main() -> None:
    inputs = load_inputs(__doc__.splitlines()[0])
    profile, spec, trace = inputs.profile, inputs.spec, inputs.trace
    setting = prepare(trace, spec, profile, SimConfig())
    hpa = run("hpa", setting).metrics["energy_kwh"]
    oracle = run("oracle", setting).metrics["energy_kwh"]
    print(f"profile sha256 {profile.sha256}; hpa {hpa:.3f} kWh, oracle {oracle:.3f} kWh")
    print("| latency buckets | windows in SLO | energy kWh | vs hpa | vs oracle | quality loss pts |")
    print("|---|---|---|---|---|---|")
    for label, buckets in (("runtime contract (DESIGN §3)", None), ("1 s up to 60 s", FINE)):
        m = run("thermostat", replace(setting, config=replace(setting.config, latency_buckets_s=buckets))).metrics
        print(
            f"| {label} | {m['slo_attainment_windows']:.2%} | {m['energy_kwh']:.3f} | {m['energy_kwh'] / hpa:.2f}x "
            f"| {m['energy_kwh'] / oracle:.2f}x | {m['quality_loss_mean']:.2f} |"
        )


if __name__ == "__main__":
    main()
