"""What the runtime's histogram buckets cost the law: the benchmark hour with the old buckets
(… 5, 10, 20, 30, 60 s), with the SLO target added as a boundary (issue 13), with today's contract
buckets, and with 1-second buckets up to 60 s (docs/BENCHMARKS.md, issues 5 and 13).

    python benchmarks/histogram_resolution.py --trace ../shared/data/traces/azure_llm_conv_2023.csv
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_inputs

from thermostat.sim.compare import prepare, run
from thermostat.sim.engine import LEGACY_LATENCY_BUCKETS_S
from thermostat.sim.run import SimConfig

FINE = (0.05, 0.1, 0.25, 0.5, 0.75, *(float(s) for s in range(1, 61)))


def main() -> None:
    inputs = load_inputs(__doc__.splitlines()[0])
    profile, spec, trace = inputs.profile, inputs.spec, inputs.trace
    setting = prepare(trace, spec, profile, SimConfig())
    hpa = run("hpa", setting).metrics["energy_kwh"]
    oracle = run("oracle", setting).metrics["energy_kwh"]
    print(f"profile sha256 {profile.sha256}; hpa {hpa:.3f} kWh, oracle {oracle:.3f} kWh")
    print("| latency buckets | windows in SLO | energy kWh | vs hpa | vs oracle | quality loss % mean |")
    print("|---|---|---|---|---|---|")
    cases = (
        ("before issue 13: ... 5, 10, 20, 30, 60 s", LEGACY_LATENCY_BUCKETS_S, False),
        ("the same, plus the SLO target", LEGACY_LATENCY_BUCKETS_S, True),
        ("runtime contract now (DESIGN §3) plus the SLO target", None, True),
        ("1 s up to 60 s", FINE, True),
    )
    for label, buckets, slo_bucket in cases:
        config = replace(setting.config, latency_buckets_s=buckets, slo_bucket=slo_bucket)
        m = run("thermostat", replace(setting, config=config)).metrics
        print(
            f"| {label} | {m['slo_attainment_windows']:.2%} | {m['energy_kwh']:.3f} | {m['energy_kwh'] / hpa:.2f}x "
            f"| {m['energy_kwh'] / oracle:.2f}x | {m['quality_loss_mean']:.2f} |"
        )


if __name__ == "__main__":
    main()
