"""Neuron routing's wall time: sparse kernels against the dense product, and decode step time per T.

    python benchmarks/bench_routing.py [--temperatures 0.05,0.5,1.0] [--batches 1,8,64] [--steps 8]
                                       [--quick] [--kernels-only] [--plan-only]

Part 1 (kernels): one projection of SmolLM2-135M's shapes (gate/up: 576 -> 3072, down: 1536 -> 576) at
keep fractions 1.0/0.7/0.5/0.3, rows 1/8/64: dense ``x @ wt``, ``embedding_bag`` with per-sample
weights (per-row sets), ``index_select`` + matmul (one shared set). Median of repeated calls.
Part 1b (kernel plan, ``--plan-only``): on the model's own weights, 30 layers cycled so they come from
memory as in a decode step, the time of ``sparse.bag_matmul`` over ``sparse.masked_dense`` per unit,
rows and kept share (median of paired ratios; < 1: the bag wins). ``sparse.dense_from_keep`` is read
off this table.
Part 2 (model): decode step time of the packaged routed model over exact's at each T and batch size,
per-token gates and batch-shared mode, each routed step paired with an exact step of an identical batch
(median of the per-pair ratios), plus the FLOPs fraction of those steps. One torch thread (the serving
default); the 1-minute load average is printed before and after, since the cores are shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "runtime")]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402, N812 - the torch convention

from thermostat_runtime import sparse  # noqa: E402
from thermostat_runtime.model import RoutedLlama  # noqa: E402
from thermostat_runtime.profile import paired_decode_timing  # noqa: E402
from thermostat_runtime.routing import UNITS  # noqa: E402


def _median_us(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def kernel_table(repeats: int) -> str:
    lines = ["| shape | rows | keep | dense us | embedding_bag us | index_select+mm us |", "|---|---|---|---|---|---|"]
    g = torch.Generator().manual_seed(0)
    for d_in, d_out in ((576, 3072), (1536, 576)):
        wt = torch.randn(d_in, d_out, generator=g)
        for rows in (1, 8, 64):
            x = torch.randn(rows, d_in, generator=g)
            for keep in (1.0, 0.7, 0.5, 0.3):
                theta = torch.quantile(x.abs().flatten(), 1 - keep) if keep < 1 else torch.tensor(-1.0)
                mask = x.abs() > theta
                r, c = mask.nonzero(as_tuple=True)
                counts = torch.bincount(r, minlength=rows)
                offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)[:-1]])
                shared = torch.topk(x.abs().sum(0), max(1, int(keep * d_in))).indices.sort().values
                dense = _median_us(lambda: x @ wt, repeats)  # noqa: B023 - called at once
                bag = _median_us(
                    lambda: F.embedding_bag(c, wt, offsets, mode="sum", per_sample_weights=x[r, c]),  # noqa: B023
                    repeats,
                )
                select = _median_us(lambda: x[:, shared] @ wt.index_select(0, shared), repeats)  # noqa: B023
                lines.append(f"| {d_in}->{d_out} | {rows} | {keep:.1f} | {dense:.0f} | {bag:.0f} | {select:.0f} |")
    return "\n".join(lines)


def plan_table(model: RoutedLlama, rows_list: list[int], repeats: int = 7) -> str:
    keeps = (0.4, 0.55, 0.7, 0.8, 0.9, 1.0)
    lines = ["| rows | unit | " + " | ".join(f"keep {k}" for k in keeps) + " |", "|---|---|" + "---|" * len(keeps)]
    g = torch.Generator().manual_seed(0)
    weights = model.weights_t
    for rows in rows_list:
        for unit, name in enumerate(UNITS):
            ratios = []
            for keep in keeps:
                x = torch.randn(rows, weights[0][unit].shape[0], generator=g)
                mask = torch.rand(x.shape, generator=g) < keep
                pairs = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    for layer in weights:
                        sparse.bag_matmul(x, mask, layer[unit])
                    middle = time.perf_counter()
                    for layer in weights:
                        sparse.masked_dense(x, mask, layer[unit])
                    pairs.append((middle - start) / (time.perf_counter() - middle))
                ratios.append(f"{statistics.median(pairs):.2f}")
            lines.append(f"| {rows} | {name} | " + " | ".join(ratios) + " |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def model_table(model: RoutedLlama, temperatures: list[float], batches: list[int], steps: int) -> str:
    lines = ["| T | FLOPs saved | batch | per-token time fraction | shared time fraction | exact step ms |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    prompt = model.tokenizer.encode("The quick brown fox jumps over the lazy dog, and then the fox")
    for t in temperatures:
        state = model.new_sequence(routing_temperature=t)
        model.forward([state], [prompt])
        flops = model.forward([state], [[13]]).executed_fraction
        for batch in batches:
            _, exact_s, per_token = paired_decode_timing(model, t, batch, steps=steps, prompt=prompt)
            shared = "-"
            if batch > 1:
                ratio = paired_decode_timing(model.with_batch_shared(), t, batch, steps=steps, prompt=prompt)[2]
                shared = f"{ratio:.3f}"
            lines.append(
                f"| {t:.2f} | {100 * (1 - flops):.1f}% | {batch} | {per_token:.3f} | {shared} | {1000 * exact_s:.1f} |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperatures", default="0.05,0.35,0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="CI-sized: one T, batch 1, 2 steps, few repeats")
    parser.add_argument("--kernels-only", action="store_true", help="Part 1 only (no model)")
    parser.add_argument("--plan-only", action="store_true", help="Part 1b only: bag over masked-dense, model weights")
    args = parser.parse_args()
    if args.quick:
        args.temperatures, args.batches, args.steps, args.repeats = "0.5", "1", 2, 3
    torch.set_num_threads(1)
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}; torch threads: {torch.get_num_threads()}")
    if args.plan_only:
        print(plan_table(RoutedLlama.load(), [1, 2, 4, 8, 32, 64]))
        print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")
        return
    print(kernel_table(args.repeats), flush=True)
    if args.kernels_only:
        return
    model = RoutedLlama.load()
    print(f"model {model.name}, router {model.router_hash}, T_min {model.t_min}")
    table = model_table(model, [float(t) for t in args.temperatures.split(",")],
                        [int(b) for b in args.batches.split(",")], args.steps)  # fmt: skip
    print(table)
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
