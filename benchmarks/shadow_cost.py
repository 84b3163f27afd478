"""What shadow requests cost: our law with quality.shadowFraction 0 and the default, same trace.

python benchmarks/shadow_cost.py --trace ../shared/data/traces/azure_llm_conv_2023.csv
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_inputs

from thermostat.sim.compare import prepare, run
from thermostat.sim.run import SimConfig


def main() -> None:
    inputs = load_inputs(__doc__.splitlines()[0])
    setting = prepare(inputs.trace, inputs.spec, inputs.profile, SimConfig())
    print("| shadowFraction | windows in SLO | energy kWh | J/request | shadow tokens | quality loss % mean |")
    print("|---|---|---|---|---|---|")
    for fraction in (0.0, 0.02, 0.05):
        quality = inputs.spec.quality.model_copy(update={"shadow_fraction": fraction})
        m = run("thermostat", replace(setting, spec=inputs.spec.model_copy(update={"quality": quality}))).metrics
        print(
            f"| {fraction:g} | {m['slo_attainment_windows']:.2%} | {m['energy_kwh']:.3f} | "
            f"{m['energy_j_per_request']:.1f} | {m['shadow_tokens']:.0f} | {m['quality_loss_mean']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
