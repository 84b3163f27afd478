"""Benchmark: one local-stack replica's capacity at T = 1 and at T_min, as `thermostat up` measures it.

    python scripts/stack_capacity.py [--requests N] [--per-round R] [--prompt-tokens P] [--max-tokens M]
                                     [--spec FILE] [-- RUNTIME ARGS...]

One `thermostat-runtime serve` process, started with the command line the stack gives its replicas
(the RoutedModel's pod template, `examples/local-stack.yaml` by default, rewritten to one torch
thread and batch 1), is fed fixed-length requests in short rounds alternating between T = 1 and the
T_min the runtime publishes (:mod:`thermostat_stack.interleave`). Prints one JSON line: requests per
second at each, the gain (median paired ratio), every paired ratio, T_min. Arguments after `--` are
appended to the runtime's (e.g. `-- --routers DIR`). Figures are recorded in docs/BENCHMARKS.md
("Local stack (issue 8)").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "runtime"), str(ROOT / "tools")]

from thermostat.render.workload import runtime_command  # noqa: E402
from thermostat_stack.capacity import measure_capacity  # noqa: E402
from thermostat_stack.processes import ProcessTable  # noqa: E402
from thermostat_stack.scenarios import RequestShape  # noqa: E402
from thermostat_stack.setup import load_manifest, parse_spec  # noqa: E402


async def main(args: argparse.Namespace, runtime_args: list[str]) -> None:
    model = parse_spec(load_manifest(args.spec)).model
    assert model is not None  # load_manifest refuses a spec without spec.model
    serve_args = [*runtime_command(model)[1:], *runtime_args]
    with tempfile.TemporaryDirectory(prefix="thermostat-capacity-bench-") as logs:
        table = ProcessTable(Path(logs))
        try:
            shape = RequestShape(args.prompt_tokens, args.max_tokens)
            capacity = await measure_capacity(
                table,
                shape=shape,
                requests_each=args.requests,
                requests_per_round=args.per_round,
                serve_args=serve_args,
            )
        finally:
            table.stop_all()
    low, high = capacity.spread
    record = {
        "capacity_rps_exact": round(capacity.exact_rps, 4),
        "capacity_rps_tmin": round(capacity.tmin_rps, 4),
        "gain": round(capacity.gain, 3),
        "gain_min": round(low, 3),
        "gain_max": round(high, 3),
        "ratios": [round(r, 3) for r in capacity.ratios],
        "t_min": capacity.t_min,
        "requests_each": capacity.requests_each,
        "prompt_tokens": shape.prompt_tokens,
        "max_tokens": shape.max_tokens,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    argv = sys.argv[1:]
    runtime_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8, help="requests per temperature (after one warm-up each)")
    parser.add_argument("--per-round", type=int, default=1, help="requests per round before switching temperature")
    parser.add_argument("--prompt-tokens", type=int, default=RequestShape().prompt_tokens)
    parser.add_argument("--max-tokens", type=int, default=RequestShape().max_tokens)
    parser.add_argument("--spec", type=Path, default=None, help="RoutedModel whose pod template to run")
    asyncio.run(main(parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv), runtime_args))
