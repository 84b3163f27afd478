"""Runtime server throughput and latency: requests/s and latency percentiles at a few concurrencies and
routing temperatures, against a real ``thermostat-runtime serve`` process on this machine.

    python benchmarks/bench_runtime.py [--concurrency 1,2,4,8] [--temperatures 1.0,0.5,0.05]
                                       [--max-tokens 32] [--requests-per-worker 4] [--threads 1]
                                       [--routers DIR|default|none] [--engine-only]

Temperatures below the served model's T_min are clamped by the server (the printed T is the applied
one). Figures go to docs/BENCHMARKS.md under "Runtime server (issue 4)".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Write one sentence about the sea."
HEADER = (
    "| routing T | concurrency | requests/s | generated tokens/s | p50 latency s | p95 latency s "
    "| executed fraction |\n"
    "|---|---|---|---|---|---|---|"
)


def start_server(args: argparse.Namespace, temperature_file: Path) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "thermostat_runtime", "serve", "--port", "0", "--threads", str(args.threads),
        "--max-batch", str(args.max_batch), "--max-queue", "1024", "--routers", args.routers,
        "--routing-temperature-file", str(temperature_file),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runtime")}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"listening on (http://[\d.]+:\d+)", line)
        if found:
            # Keep draining stderr (one JSON line per request) so the server never blocks on the pipe.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, found.group(1)
    raise SystemExit("server exited before listening")


async def applied_temperature(session: aiohttp.ClientSession, url: str, wanted: float) -> float:
    """Wait until the routing gauge shows the new file value, clamped into [T_min, 1]; returns it."""
    async with session.get(url + "/v1/models") as response:
        t_min = float((await response.json())["data"][0]["t_min"])
    expected = min(1.0, max(t_min, wanted))
    for _ in range(400):
        async with session.get(url + "/metrics") as response:
            text = await response.text()
        value = float(re.search(r"^thermostat_routing_temperature (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
        if abs(value - expected) < 1e-9:
            return value
        await asyncio.sleep(0.05)
    raise SystemExit(f"routing temperature {wanted} (applied as {expected}) never showed up")


async def one_request(session: aiohttp.ClientSession, url: str, max_tokens: int) -> tuple[float, dict[str, Any]]:
    body = {"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0, "seed": 0, "ignore_eos": True}
    start = time.perf_counter()
    async with session.post(url + "/v1/completions", json=body) as response:
        reply = await response.json()
        if response.status != 200:
            raise SystemExit(f"request failed: {response.status} {reply}")
    return time.perf_counter() - start, reply["usage"]


async def run_cell(
    session: aiohttp.ClientSession, url: str, concurrency: int, args: argparse.Namespace
) -> dict[str, float]:
    results: list[tuple[float, dict[str, Any]]] = []

    async def worker() -> None:
        for _ in range(args.requests_per_worker):
            results.append(await one_request(session, url, args.max_tokens))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    tokens = sum(r[1]["completion_tokens"] for r in results)
    return {
        "rps": len(results) / wall,
        "tok_s": tokens / wall,
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "executed": statistics.mean(r[1]["executed_fraction"] for r in results),
    }


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        temperature_file = Path(tmp) / "routing_temperature"
        temperature_file.write_text("1.0")
        process, url = start_server(args, temperature_file)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
                await one_request(session, url, 4)  # warm-up
                print(f"server {url}, max_tokens {args.max_tokens}, prompt {PROMPT!r}, torch threads {args.threads}")
                print(HEADER)
                for wanted in args.temperatures:
                    temperature_file.write_text(str(wanted))
                    applied = await applied_temperature(session, url, wanted)
                    for concurrency in args.concurrency:
                        cell = await run_cell(session, url, concurrency, args)
                        row = (
                            applied,
                            concurrency,
                            cell["rps"],
                            cell["tok_s"],
                            cell["p50"],
                            cell["p95"],
                            cell["executed"],
                        )
                        print("| {:g} | {} | {:.2f} | {:.1f} | {:.2f} | {:.2f} | {:.3f} |".format(*row), flush=True)
        finally:
            process.terminate()
            process.wait(timeout=120)


def engine_only(args: argparse.Namespace) -> None:
    """The same 32-token request through the scheduler in this process (no HTTP), batch 1, per T."""
    import torch

    from thermostat_runtime.engine import ModelEngine
    from thermostat_runtime.metrics import RuntimeMetrics
    from thermostat_runtime.scheduler import FinishEvent, GenerationRequest, Scheduler

    torch.set_num_threads(args.threads)
    engine = ModelEngine.load(router_dir=None if args.routers == "none" else args.routers)
    print("| routing T | scheduler only, batch 1: ms per generated token | executed fraction |\n|---|---|---|")

    async def one(temperature: float) -> tuple[float, float]:
        scheduler = Scheduler(engine, RuntimeMetrics(), lambda: temperature)
        scheduler.start()
        request = GenerationRequest("bench", engine.encode_text(PROMPT), args.max_tokens, 0.0, 1.0, 0, ignore_eos=True)
        start = time.perf_counter()
        handle = scheduler.submit(request, asyncio.get_running_loop())
        while not isinstance(event := await handle.events.get(), FinishEvent):
            pass
        elapsed = time.perf_counter() - start
        scheduler.stop()
        return elapsed / args.max_tokens, event.result.executed_fraction

    for temperature in args.temperatures:
        runs = [asyncio.run(one(temperature)) for _ in range(3)]
        per_token = statistics.median(r[0] for r in runs)
        print(f"| {engine.clamp(temperature):g} | {per_token * 1000:.1f} | {runs[0][1]:.3f} |", flush=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    floats = lambda text: [float(x) for x in text.split(",")]  # noqa: E731
    parser.add_argument("--concurrency", type=lambda t: [int(x) for x in t.split(",")], default=[1, 2, 4, 8])
    parser.add_argument("--temperatures", type=floats, default=[1.0, 0.5, 0.05])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--requests-per-worker", type=int, default=4)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--routers", default="default")
    parser.add_argument("--engine-only", action="store_true", help="time the scheduler without HTTP instead")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.engine_only:
        engine_only(arguments)
    else:
        asyncio.run(main(arguments))
