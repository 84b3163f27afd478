"""The fused decode-row kernel (``thermostat_runtime.fused``) against ``embedding_bag``, in decode steps.

    python benchmarks/bench_fused.py [--temperatures 0.05,0.5,0.75] [--batches 1,8] [--steps 8]

Per T and batch size, three identical batches after a 16-token test-split prompt are stepped in turn:
routed with the fused op, routed with the bag, exact (T = 1); each step's time over the exact step
beside it, median over ``--steps`` rounds (the first round warms caches). One torch thread; the
1-minute load average is printed before and after (the cores are shared). The two routed batches must
produce the same logits bit for bit (the fused op is only used when it matches the bag's bits).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "runtime")]

import torch  # noqa: E402

from thermostat_runtime import fused  # noqa: E402
from thermostat_runtime.calibrate import split_chunks  # noqa: E402
from thermostat_runtime.model import RoutedLlama  # noqa: E402


def _step(model: RoutedLlama, states: list, token: int, use_fused: bool) -> tuple[float, torch.Tensor]:  # type: ignore[type-arg]
    saved = list(fused._op)
    if not use_fused:
        fused._op.clear()
    start = time.perf_counter()
    out = model.forward(states, [[token]] * len(states))
    elapsed = time.perf_counter() - start
    fused._op[:] = saved
    return elapsed, out.logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--temperatures", default="0.05,0.5,0.75")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = RoutedLlama.load()
    if not fused.wait_ready(900) or fused.op() is None:
        raise SystemExit("the fused op did not build here (see the log); nothing to compare")
    prompt = split_chunks(model, "test", 64, 256)[0, :16].tolist()
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| T | batch | fused / exact | bag / exact | fused / bag | bits equal |\n|---|---|---|---|---|---|")
    for t in (float(v) for v in args.temperatures.split(",")):
        for batch in (int(v) for v in args.batches.split(",")):
            sets = {name: [model.new_sequence(routing_temperature=temp, seed=i) for i in range(batch)]
                    for name, temp in (("fused", t), ("bag", t), ("exact", 1.0))}  # fmt: skip
            for states in sets.values():
                model.forward(states, [prompt] * batch)
            ratios: dict[str, list[float]] = {"fused": [], "bag": [], "fb": []}
            equal = True
            for step in range(args.steps + 1):
                f_s, f_logits = _step(model, sets["fused"], 100 + step, True)
                b_s, b_logits = _step(model, sets["bag"], 100 + step, False)
                e_s, _ = _step(model, sets["exact"], 100 + step, True)
                equal &= torch.equal(f_logits, b_logits)
                if step:
                    ratios["fused"].append(f_s / e_s)
                    ratios["bag"].append(b_s / e_s)
                    ratios["fb"].append(f_s / b_s)
            med = {k: statistics.median(v) for k, v in ratios.items()}
            cells = f"{med['fused']:.3f} | {med['bag']:.3f} | {med['fb']:.3f} | {equal}"
            print(f"| {t:.2f} | {batch} | {cells} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
