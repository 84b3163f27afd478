"""What a staged rollout costs before its verdict, on the shared trace (issue 16).

    python benchmarks/rollout_ab.py --trace ../shared/data/traces/azure_llm_conv_2023.csv

The candidate is the operating point the profile offers at the quality budget (the lowest
temperature on a 0.01 grid whose profiled loss fits). The *good* case's truth matches the profile;
the *harmful* one's routing loses ``--harm``× the profiled KL (a router worse than its profile).
Stable pods stay exact (T = 1). For each case: the verdict, when, how many requests ran on canary
pods before it, and the true quality loss over their tokens. Figures go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import time
from dataclasses import replace

from common import load_inputs

from thermostat.api.spec import Rollout
from thermostat.sim.rollout import study
from thermostat.sim.truth import Truth


def main() -> None:
    inputs = load_inputs(__doc__ or "")
    spec, profile, trace = inputs.spec, inputs.profile, inputs.trace
    spec = spec.model_copy(update={"rollout": Rollout()})
    budget = spec.quality.max_quality_loss_percent
    grid = [round(1.0 - 0.01 * i, 2) for i in range(100) if 1.0 - 0.01 * i >= profile.t_min]
    candidate = min(t for t in grid if profile.quality_loss_percent(t) <= budget)
    loss = profile.quality_loss_percent(candidate)
    print(f"trace {len(trace)} requests over {trace.duration_s / 60:.0f} min; candidate T {candidate} "
          f"(profiled loss {loss:.2f}%, budget {budget}%); rollout {spec.rollout}")  # fmt: skip
    for name, factor in (("good", 1.0), ("harmful", 4.0)):
        started = time.perf_counter()
        result = study(trace, spec, profile, replace(Truth(), quality_factor=factor), candidate_t=candidate)
        share = 100 * result.canary_requests / max(result.total_requests, 1)
        print(f"{name:8s} truth x{factor:g}: {result.verdict} at {result.verdict_s or float('nan'):.0f}s; "
              f"{result.canary_requests:.0f} canary requests before the verdict ({share:.1f}% of "
              f"{result.total_requests:.0f}), {result.canary_tokens:.0f} tokens, true loss on them "
              f"{result.canary_loss_percent:.2f}%; "
              f"stable T seen (to the verdict) {sorted(result.stable_temperatures)}; "
              f"{time.perf_counter() - started:.0f}s wall")  # fmt: skip
        for line in result.analyses:
            print(f"    {line}")


if __name__ == "__main__":
    main()
