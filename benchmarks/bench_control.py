"""Speed of the control law and the simulator (docs/BENCHMARKS.md, issue 5).

    python benchmarks/bench_control.py --trace ../shared/data/traces/azure_llm_conv_2023.csv

Prints the median and p99 time of one ``decide`` call over a simulated hour's observations, and
the wall time of one controller (thermostat) over the trace at the benchmark's rate scale.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_inputs

from thermostat.control import decide
from thermostat.sim.controllers import LawController
from thermostat.sim.run import SimConfig, simulate


class TimedLaw(LawController):
    """The law as the simulator runs it, timing each decide call."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.times: list[float] = []

    def decide(self, observation, now):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        out = decide(observation, self.spec, self.memory, now, profile=self.profile)
        self.times.append(time.perf_counter() - started)
        self.memory = out.memory
        return out.replicas, out.routing_temperature


def main() -> None:
    inputs = load_inputs(__doc__.splitlines()[0])
    profile, spec, trace = inputs.profile, inputs.spec, inputs.trace
    law = TimedLaw(spec, profile)
    started = time.perf_counter()
    result = simulate(trace, spec, profile, law, SimConfig(initial_replicas=7))
    wall = time.perf_counter() - started
    times_ms = sorted(t * 1000 for t in law.times)
    print(f"profile sha256 {profile.sha256}")
    print(f"simulate thermostat: {len(trace)} requests, {trace.duration_s / 60:.0f} min trace: {wall:.1f} s wall")
    print(
        f"decide: {len(times_ms)} calls, median {statistics.median(times_ms):.3f} ms, "
        f"p99 {times_ms[int(0.99 * len(times_ms))]:.3f} ms, max {times_ms[-1]:.3f} ms"
    )
    print(
        f"windows in SLO {result.metrics['slo_attainment_windows']:.2%}, energy {result.metrics['energy_kwh']:.3f} kWh"
    )


if __name__ == "__main__":
    main()
