"""Speed of the control law and the simulator (docs/BENCHMARKS.md, issue 5).

    python benchmarks/bench_control.py --trace ../shared/data/traces/azure_llm_conv_2023.csv

Prints the median and p99 time of one ``decide`` call over a simulated hour's observations, and
the wall time of one controller (thermostat) over the trace at the benchmark's rate scale.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "runtime")]

from thermostat.control import decide  # noqa: E402
from thermostat.profiles import load_profile  # noqa: E402
from thermostat.sim.controllers import LawController  # noqa: E402
from thermostat.sim.report import load_spec  # noqa: E402
from thermostat.sim.run import SimConfig, simulate  # noqa: E402
from thermostat.sim.trace import load_azure_trace, scale_rate  # noqa: E402


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", required=True)
    parser.add_argument("--spec", default=str(ROOT / "benchmarks" / "chat-azure.yaml"))
    parser.add_argument("--rate-scale", type=float, default=3.0)
    args = parser.parse_args()
    profile = load_profile()
    spec = load_spec(Path(args.spec))
    trace = scale_rate(load_azure_trace(args.trace), args.rate_scale)
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
