"""Benchmark: one local-stack replica's capacity at T = 1 and at T_min, as `thermostat up` measures it.

    python scripts/stack_capacity.py [--requests N] [--prompt-tokens P] [--max-tokens M] [-- RUNTIME ARGS...]

One `thermostat-runtime serve` process (one torch thread, batch 1, as in the stack) is fed requests of
the given shape one after another at T = 1, then at the T_min its profile publishes (read back from
the runtime, which clamps). Prints one JSON line: requests per second at each, the gain, T_min.
Arguments after `--` go to the runtime (e.g. `-- --routers DIR`). Figures are recorded in
docs/BENCHMARKS.md ("Local stack (issue 8)").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "runtime")]

from thermostat.stack.capacity import measure_capacity  # noqa: E402
from thermostat.stack.processes import ProcessTable  # noqa: E402
from thermostat.stack.scenarios import RequestShape  # noqa: E402


async def main(args: argparse.Namespace, runtime_args: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="thermostat-capacity-bench-") as logs:
        table = ProcessTable(Path(logs))
        try:
            shape = RequestShape(args.prompt_tokens, args.max_tokens)
            capacity = await measure_capacity(table, shape=shape, requests_each=args.requests, model_args=runtime_args)
        finally:
            table.stop_all()
    print(
        json.dumps(
            {
                "capacity_rps_exact": round(capacity.exact_rps, 4),
                "capacity_rps_tmin": round(capacity.tmin_rps, 4),
                "gain": round(capacity.gain, 3),
                "t_min": capacity.t_min,
                "requests_each": args.requests,
                "prompt_tokens": shape.prompt_tokens,
                "max_tokens": shape.max_tokens,
            }
        )
    )


if __name__ == "__main__":
    argv = sys.argv[1:]
    runtime_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8, help="requests per temperature (after one warm-up)")
    parser.add_argument("--prompt-tokens", type=int, default=RequestShape().prompt_tokens)
    parser.add_argument("--max-tokens", type=int, default=RequestShape().max_tokens)
    asyncio.run(main(parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv), runtime_args))
