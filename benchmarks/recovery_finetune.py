"""Recovery fine-tune of the neuron router's sparsity (issue 11 item 5): train, then score.

    python benchmarks/recovery_finetune.py train --steps 240 --checkpoint /tmp/adapters.pt
    python benchmarks/recovery_finetune.py eval --checkpoint /tmp/adapters.pt --split validation \
        --chunks 6 --temperatures 0.5,0.55,0.6,0.65,0.7,0.75

``train`` distils rank-4 skipped-channel adapters (``thermostat_runtime.recovery``) to the exact model on
the training split, one torch thread, resumable from ``--checkpoint`` (written every 10 steps; rerun the
same command to go on). ``eval`` scores a split without and with the adapters at each T (KL, quality
loss, FLOPs saved incl. the adapters' own FLOPs), paired on the same chunks; ``--out`` also writes
the adapters as safetensors (float16) and prints their sha256. The test split is for the one final
score only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "runtime")]

import torch  # noqa: E402

from thermostat_runtime import recovery  # noqa: E402
from thermostat_runtime.calibrate import split_chunks  # noqa: E402
from thermostat_runtime.model import RoutedLlama  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["train", "eval"])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--train-chunks", type=int, default=160)
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    parser.add_argument("--chunks", type=int, default=6)
    parser.add_argument("--temperatures", default="0.5,0.6,0.7,0.75")
    parser.add_argument("--out", type=Path, help="eval: also write the adapters (safetensors) here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    model = RoutedLlama.load()
    assert model.router is not None
    if args.command == "train":
        settings = recovery.TrainSettings(steps=args.steps, lr=args.lr)
        chunks = split_chunks(model, "train", args.train_chunks, settings.seq_len)
        recovery.train(model, model.router, chunks, settings, args.checkpoint)
    else:
        saved = torch.load(args.checkpoint, weights_only=False)
        adapters = recovery.Adapters.from_state(saved["adapters"], model.config.n_layers)
        chunks = split_chunks(model, args.split, args.chunks, 256)
        temps = [float(t) for t in args.temperatures.split(",")]
        result = {
            "split": args.split, "chunks": args.chunks, "steps": saved["step"], "router_hash": model.router_hash,
            "without": recovery.evaluate(model, model.router, chunks, temps, None),
            "with": recovery.evaluate(model, model.router, chunks, temps, adapters),
        }
        if args.out is not None:
            result["adapters_sha256"] = recovery.save_adapters(adapters, args.out, {"rank": adapters.rank,
                                                               "steps": saved["step"], "router": model.router_hash})
        print(json.dumps(result, indent=1))
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
