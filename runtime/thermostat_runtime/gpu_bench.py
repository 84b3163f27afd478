"""GPU benchmark: decode tokens/s and joules per token of the routed model, per routing temperature.

Run: ``python -m thermostat_runtime.gpu_bench [--out FILE]``. Loads the model on the first CUDA
device and, for 5 temperatures at batch 1 and 64, decodes for windows of at least 2 s, reading
NVML's total-energy counter before and after each window (3 windows each). Without a GPU (or without
NVML) it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

TEMPERATURES = [0.1, 0.3, 0.5, 0.7, 1.0]
BATCHES = [1, 64]
WINDOW_S = 2.0
REPEATS = 3


def _window(model: Any, handle: Any, temperature: float, batch: int, prompt: list[int]) -> dict[str, float]:
    import pynvml
    import torch

    states = [model.new_sequence(routing_temperature=temperature, seed=i) for i in range(batch)]
    out = model.forward(states, [prompt] * batch)
    tokens, steps = [[int(t)] for t in out.logits.argmax(-1)], 0
    torch.cuda.synchronize()
    energy_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    start = time.perf_counter()
    while time.perf_counter() - start < WINDOW_S:
        out = model.forward(states, tokens)
        tokens = [[int(t)] for t in out.logits.argmax(-1)]
        steps += 1
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    joules = (pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - energy_mj) / 1000.0
    generated = steps * batch
    return {
        "tokens_per_s": generated / seconds,
        "joules_per_token": joules / generated,
        "executed_fraction": states[0].executed_fraction,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU available: the GPU benchmark did not run")
        return 0
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception as error:  # NVML missing or unusable: nothing to measure energy with
        print(f"NVML unavailable ({error}): the GPU benchmark did not run")
        return 0
    from thermostat_runtime.model import RoutedLlama

    model = RoutedLlama.load(device="cuda")
    prompt = model.tokenizer.encode("The quick brown fox jumps over the lazy dog. " * 2)
    results: list[dict[str, Any]] = []
    for batch in BATCHES:
        for temperature in TEMPERATURES:
            windows = [_window(model, handle, temperature, batch, prompt) for _ in range(REPEATS)]
            row = {
                "gpu": torch.cuda.get_device_name(0),
                "batch": batch,
                "routing_temperature": temperature,
                **{k: statistics.median(w[k] for w in windows) for k in windows[0]},
            }
            print(json.dumps(row))
            results.append(row)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
