"""Tune the control law's constants on the FIRST HALF of a trace only (issue 13): a grid over the
constants that set the law's headroom, each run of our law alone, printed as a table.

    python benchmarks/tune_law.py --trace ../shared/data/traces/azure_llm_conv_2023.csv --rate-scale 3

The second half (and the whole trace) are for reporting (benchmarks/law_v2.py), never for tuning.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_inputs

from thermostat.control import law, replicas
from thermostat.sim.compare import prepare, run
from thermostat.sim.run import SimConfig
from thermostat.sim.trace import trace_part

GRID = {
    "EXCURSION_AT": (law, (0.9, 0.95, 1.0)),
    "DOWNSCALE_HYSTERESIS": (replicas, (0.85, 0.9, 0.95, 1.0)),
    "SCALE_UP_CONFIRMATIONS": (replicas, (1, 2, 3, 4)),
}
BUDGETS = (1.0, 5.0)


def main() -> None:
    inputs = load_inputs(__doc__.splitlines()[0])
    trace = trace_part(inputs.trace, "first-half")
    setting = prepare(trace, inputs.spec, inputs.profile, SimConfig())
    names = list(GRID)
    print("| " + " | ".join(names) + " | budget % | windows in SLO | energy kWh | quality loss % |")
    print("|" + "---|" * (len(names) + 4))
    for values in itertools.product(*(choices for _, choices in GRID.values())):
        for name, value in zip(names, values, strict=True):
            setattr(GRID[name][0], name, value)
        for budget in BUDGETS:
            quality = inputs.spec.quality.model_copy(update={"max_quality_loss_percent": budget})
            spec = inputs.spec.model_copy(update={"quality": quality})
            m = run("thermostat", replace(setting, spec=spec)).metrics
            row = " | ".join(f"{v:g}" for v in values)
            print(
                f"| {row} | {budget:g} | {m['slo_attainment_windows']:.2%} | {m['energy_kwh']:.3f} | "
                f"{m['quality_loss_mean']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
