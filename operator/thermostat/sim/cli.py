"""``thermostat simulate``: load the inputs, run the controllers, print and write the results."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from thermostat.control import ProfileError
from thermostat.sim.compare import CONTROLLERS, prepare, run_all
from thermostat.sim.report import SpecError, load_spec, plot, table, to_json
from thermostat.sim.run import SimConfig
from thermostat.sim.trace import TraceError, load_azure_trace, scale_rate, synthetic_trace, trace_part
from thermostat.sim.truth import Truth, perturbed


def run_simulate(
    *,
    trace: str,
    spec_path: Path,
    controller: str,
    profile_path: Path | None,
    rate_scale: float,
    perturb: bool,
    part: str = "whole",
    seed: int,
    json_out: Path | None,
    plots: Path | None,
) -> int:
    """Run and report; returns the exit code (2 for bad input, with a message on stderr)."""
    from thermostat.profiles import load_profile

    names = CONTROLLERS if controller == "all" else tuple(n.strip() for n in controller.split(","))
    unknown = [n for n in names if n not in CONTROLLERS]
    try:
        if unknown:
            raise ValueError(f"unknown controller(s) {unknown}; choose from {', '.join(CONTROLLERS)} or all")
        spec = load_spec(spec_path)
        profile = load_profile(profile_path)
        base = synthetic_trace(seed=seed) if trace == "synthetic" else load_azure_trace(trace)
        requests = scale_rate(trace_part(base, part), rate_scale, seed=seed)
    except (ValueError, ProfileError, SpecError, TraceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    truth = perturbed(Truth()) if perturb else Truth()
    started = time.perf_counter()
    setting = prepare(requests, spec, profile, SimConfig(truth=truth))
    results = run_all(setting, names)
    elapsed = time.perf_counter() - started
    print(
        f"trace {requests.name}: {len(requests)} requests over {requests.duration_s / 60:.1f} min (rate x{rate_scale})"
    )
    print(f"profile {profile.model} ({profile.provenance}, {profile.device}) sha256 {profile.sha256}")
    print(
        f"ground truth: {'perturbed' if perturb else 'as the profile says'}; oracle capacity "
        f"{setting.capacity_tokens_per_s:.0f} generated tokens/s per replica; {elapsed:.1f} s"
    )
    print(table(results))
    run = {
        "trace": requests.name,
        "requests": len(requests),
        "rate_scale": rate_scale,
        "part": part,
        "perturb": perturb,
        "seed": seed,
        "profile_sha256": profile.sha256,
        "profile_provenance": profile.provenance,
        "truth": replace(truth).__dict__,
        "oracle_capacity_tokens_per_s": setting.capacity_tokens_per_s,
    }
    if json_out is not None:
        json_out.write_text(to_json(results, run), encoding="utf-8")
    if plots is not None:
        for path in plot(results, spec, plots):
            print(f"plot: {path}")
    return 0
