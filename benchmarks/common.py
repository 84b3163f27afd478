"""What the simulator benchmarks share: their command line and the trace, spec and profile it loads.

Each benchmark takes ``--trace``, ``--spec``, ``--rate-scale`` and ``--profile``. The profile defaults to
the committed *assumed H100* profile, which the figures in docs/BENCHMARKS.md were measured with; the
operator's own default (``default_profile_path()``) prefers the measured CPU profile of the shipped model,
whose throughput is not a GPU's.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "runtime"), str(ROOT / "tools")]

from thermostat.profiles import load_profile  # noqa: E402
from thermostat.sim.report import load_spec  # noqa: E402
from thermostat.sim.trace import load_azure_trace, scale_rate  # noqa: E402

ASSUMED_PROFILE = ROOT / "runtime" / "thermostat_runtime" / "profiles" / "assumed.json"


@dataclass
class BenchInputs:
    """The parsed command line and what it names, loaded."""

    args: argparse.Namespace
    profile: Any
    spec: Any
    trace: Any


def load_inputs(description: str) -> BenchInputs:
    """Parse the shared options and load the trace (rate-scaled), the spec and the profile."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--trace", required=True, help="Azure-format CSV (TIMESTAMP,ContextTokens,GeneratedTokens)")
    parser.add_argument("--spec", default=str(ROOT / "benchmarks" / "chat-azure.yaml"))
    parser.add_argument("--rate-scale", type=float, default=3.0)
    parser.add_argument("--profile", default=str(ASSUMED_PROFILE), help="routing profile JSON")
    args = parser.parse_args()
    profile = load_profile(Path(args.profile))
    trace = scale_rate(load_azure_trace(args.trace), args.rate_scale)
    return BenchInputs(args, profile, load_spec(Path(args.spec)), trace)
