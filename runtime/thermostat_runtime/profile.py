"""Calibration: the measured quality/compute profile of the routed model (DESIGN §3 profile format).

For each routing temperature of a grid, on held-out chunks (never used in training), through the
serving path (``RoutedLlama.forward``, so skipped rows really are not computed):
``flops_fraction`` (executed/exact weight FLOPs per token, including the LM head), ``units_fraction``
(routed MLP rows run), KL(full || routed), top-1 agreement with the exact model, perplexity (mean and
95% interval) and decode tokens/s per batch size, plus ``time_fraction`` (batch-1 decode time per token
over exact's, measured back to back). The first ``ALWAYS_RUN_POSITIONS`` positions of each chunk always
run, so they are left out of KL and agreement (counting them would flatter the routed model).
Perplexity's interval: over seeds when gates are sampled; with deterministic gates (gate_noise = 0)
seeds change nothing, so one seed is run and the interval is over held-out chunks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from thermostat_runtime.model import RoutedLlama
from thermostat_runtime.routing import ALWAYS_RUN_POSITIONS
from thermostat_runtime.train import held_out_chunks

log = logging.getLogger(__name__)
SCHEMA_PATH = Path(__file__).parent / "schemas" / "profile.schema.json"
PACKAGED_PROFILE = Path(__file__).parent / "profiles" / "smollm2-135m-cpu.json"


@dataclass
class ProfileSettings:
    """How much to measure; ``quick()`` is the CI-sized run.

    Batch sizes above ``small_batch_max`` are timed only at ``t_min``, 0.5 and 1 (a batch of 256 costs
    minutes on two cores); the smaller ones at every temperature.
    """

    temperatures: list[float] = field(default_factory=lambda: [0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95])
    n_chunks: int = 4
    seq_len: int = 256
    seeds: int = 3
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 64, 256])
    small_batch_max: int = 8
    decode_steps: int = 4
    prompt_len: int = 8

    @classmethod
    def quick(cls) -> ProfileSettings:
        return cls(temperatures=[0.5], n_chunks=2, seq_len=64, seeds=1, batch_sizes=[1], decode_steps=4)

    def batch_sizes_at(self, temperature: float, t_min: float) -> list[int]:
        every = temperature in (t_min, 0.5, 1.0)
        return [b for b in self.batch_sizes if every or b <= self.small_batch_max]


@dataclass
class _Quality:
    flops_fraction: float
    units_fraction: float
    kl_nats: float
    top1: float
    chunk_log_ppl: list[float]


def _measure_quality(
    model: RoutedLlama, chunks: np.ndarray, exact_logp: list[torch.Tensor], temperature: float, seed: int
) -> _Quality:
    kls, agree, log_ppl, flops, units = [], [], [], [0.0, 0.0], [0, 0]
    for i, chunk in enumerate(chunks):
        state = model.new_sequence(routing_temperature=temperature, seed=seed * 1000 + i)
        out = model.forward([state], [chunk.tolist()], all_logits=True, record_gates=True)
        assert out.all_logits is not None
        logp = F.log_softmax(out.all_logits[0], dim=-1)
        kl = (exact_logp[i].exp() * (exact_logp[i] - logp)).sum(-1)[ALWAYS_RUN_POSITIONS:]
        kls.append(kl)
        agree.append((logp.argmax(-1) == exact_logp[i].argmax(-1))[ALWAYS_RUN_POSITIONS:])
        targets = torch.from_numpy(chunk[1:])
        log_ppl.append(float(-logp[:-1].gather(1, targets[:, None]).mean()))
        flops[0] += out.flops_executed
        flops[1] += out.flops_full
        units[0] += sum(int(m.sum()) for m in out.exec_masks.values())
        units[1] += sum(m.numel() for m in out.exec_masks.values())
    return _Quality(
        flops[0] / flops[1],
        units[0] / units[1] if units[1] else 1.0,
        float(torch.cat(kls).clamp_min(0).mean()),
        float(torch.cat(agree).double().mean()),
        log_ppl,
    )


def _exact_log_probs(model: RoutedLlama, chunks: np.ndarray) -> list[torch.Tensor]:
    exact = model.with_routers(None)
    result = []
    for chunk in chunks:
        out = exact.forward([exact.new_sequence()], [chunk.tolist()], all_logits=True)
        assert out.all_logits is not None
        result.append(F.log_softmax(out.all_logits[0], dim=-1))
    return result


def _ppl_interval(samples: list[float]) -> tuple[float, list[float]]:
    """exp of the mean log-perplexity and of its 95% t-interval (normal beyond 30 samples)."""
    mean = statistics.fmean(samples)
    if len(samples) < 2:
        return math.exp(mean), [math.exp(mean), math.exp(mean)]
    half = 1.96 * statistics.stdev(samples) / math.sqrt(len(samples))
    return math.exp(mean), [math.exp(mean - half), math.exp(mean + half)]


@dataclass
class DecodeTiming:
    """Decode steps of one batch at T, each timed right after an exact step of an identical batch."""

    step_s: float
    exact_step_s: float
    time_fraction: float
    executed_fraction: float


def _greedy(out_logits: torch.Tensor) -> list[list[int]]:
    return [[int(t)] for t in out_logits.argmax(-1)]


def paired_decode_timing(
    model: RoutedLlama, temperature: float, batch: int, *, steps: int, prompt: list[int]
) -> DecodeTiming:
    """Median decode step time at T and at exact, alternating step by step so that load from other
    processes on the machine hits both alike; ``time_fraction`` is the median of the per-pair ratios."""
    routed = [model.new_sequence(routing_temperature=temperature, seed=i) for i in range(batch)]
    exact = [model.new_sequence(routing_temperature=1.0, seed=i) for i in range(batch)]
    next_routed = _greedy(model.forward(routed, [prompt] * batch).logits)
    next_exact = _greedy(model.forward(exact, [prompt] * batch).logits)
    routed_s, exact_s, executed, full = [], [], 0.0, 0.0
    for _ in range(steps):
        start = time.perf_counter()
        out = model.forward(routed, next_routed)
        routed_s.append(time.perf_counter() - start)
        executed, full, next_routed = (
            executed + out.flops_executed,
            full + out.flops_full,
            _greedy(out.logits),
        )
        start = time.perf_counter()
        next_exact = _greedy(model.forward(exact, next_exact).logits)
        exact_s.append(time.perf_counter() - start)
    ratios = [r / e for r, e in zip(routed_s, exact_s, strict=True)]
    return DecodeTiming(
        statistics.median(routed_s), statistics.median(exact_s), statistics.median(ratios), executed / full
    )


def device_name(model: RoutedLlama) -> str:
    if model.device.type == "cuda":
        return torch.cuda.get_device_name(model.device)
    return f"cpu: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _speed(
    model: RoutedLlama, temperature: float, settings: ProfileSettings, prompt: list[int]
) -> tuple[dict[str, float], float, list[dict[str, float]]]:
    """tokens/s per batch size, batch-1 time fraction vs exact (paired steps), benchmark rows."""
    tokens_per_s, rows, time_fraction = {}, [], 1.0
    for batch in settings.batch_sizes_at(temperature, model.t_min):
        steps = max(settings.decode_steps, 32 // batch)
        timing = paired_decode_timing(model, temperature, batch, steps=steps, prompt=prompt)
        tokens_per_s[str(batch)] = round(batch / timing.step_s, 3)
        if batch == 1:
            time_fraction = timing.time_fraction
        rows.append(
            {
                "routing_temperature": temperature,
                "batch": batch,
                "step_s": timing.step_s,
                "exact_step_s": timing.exact_step_s,
                "time_fraction": timing.time_fraction,
                "executed_fraction": timing.executed_fraction,
            }
        )
    return tokens_per_s, time_fraction, rows


def measure_profile(
    model: RoutedLlama, settings: ProfileSettings
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """The profile JSON (DESIGN §3) and the wall-time benchmark rows."""
    chunks = held_out_chunks(model, settings.n_chunks, settings.seq_len)
    exact_logp = _exact_log_probs(model, chunks)
    prompt = chunks[0, : settings.prompt_len].tolist()
    deterministic = model.routers is None or model.routers.config.gate_noise == 0.0
    seeds = 1 if deterministic else settings.seeds
    temps = sorted({model.t_min, *[t for t in settings.temperatures if model.t_min < t < 1.0], 1.0})
    points, bench = [], []
    for temperature in temps:
        runs = [_measure_quality(model, chunks, exact_logp, temperature, seed) for seed in range(seeds)]
        samples = [statistics.fmean(r.chunk_log_ppl) for r in runs] if seeds >= 3 else runs[0].chunk_log_ppl
        ppl_mean, ci95 = _ppl_interval(samples)
        tokens_per_s, time_fraction, rows = _speed(model, temperature, settings, prompt)
        log.info("T=%.2f measured: top-1 %.4f, flops %.4f", temperature, runs[0].top1, runs[0].flops_fraction)
        bench += rows
        points.append(
            {
                "routing_temperature": temperature,
                # Router overhead can push this a hair over 1 when nothing skips; the schema caps it at 1.
                "flops_fraction": min(1.0, statistics.fmean(r.flops_fraction for r in runs)),
                "units_fraction": statistics.fmean(r.units_fraction for r in runs),
                "time_fraction": time_fraction,
                "kl_nats": statistics.fmean(r.kl_nats for r in runs),
                "top1_agreement": statistics.fmean(r.top1 for r in runs),
                "perplexity": {"mean": ppl_mean, "ci95": ci95, "seeds": seeds},
                "tokens_per_s": tokens_per_s,
            }
        )
    profile = {
        "schema_version": 1,
        "model": model.name,
        "router_hash": model.router_hash,
        "device": device_name(model),
        "provenance": "measured",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "notes": _notes(settings, chunks, seeds, deterministic),
        "t_min": model.t_min,
        "points": points,
    }
    return profile, bench


def _notes(settings: ProfileSettings, chunks: np.ndarray, seeds: int, deterministic: bool) -> str:
    interval = (
        "over held-out chunks (deterministic gates: seeds do not change them)"
        if deterministic
        else f"over {seeds} seeds"
    )
    return (
        f"thermostat-runtime profile: {chunks.shape[0]} held-out chunks x {chunks.shape[1]} tokens; KL and "
        f"top-1 exclude the first {ALWAYS_RUN_POSITIONS} positions (always run); perplexity 95% interval "
        f"{interval}; tokens_per_s: decode steps of batch sizes {settings.batch_sizes} (those above "
        f"{settings.small_batch_max} only at t_min, 0.5 and 1), each paired with an exact step, median of "
        f">= {settings.decode_steps}; "
        f"flops count weight matmuls incl. the LM head and the routers, not attention scores "
        f"(capped at 1: router overhead where nothing skips)."
    )


def validate_profile(profile: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``profile`` matches the shared JSON Schema."""
    import jsonschema

    jsonschema.validate(profile, json.loads(SCHEMA_PATH.read_text()))


def benchmark_table(bench: list[dict[str, float]]) -> str:
    """Markdown: decode step time against executed fraction per batch size and temperature."""
    lines = [
        "| routing_temperature | batch | executed fraction | step ms | exact step ms "
        "| time saved (paired median) |",
        "|---|---|---|---|---|---|",
    ]
    for row in bench:
        lines.append(
            f"| {row['routing_temperature']:.2f} | {int(row['batch'])} | {row['executed_fraction']:.3f} | "
            f"{1000 * row['step_s']:.1f} | {1000 * row['exact_step_s']:.1f} | "
            f"{100 * (1 - row['time_fraction']):.1f}% |"
        )
    return "\n".join(lines)


def profile_table(profile: dict[str, Any]) -> str:
    """Markdown: the frontier, one row per temperature."""
    lines = [
        "| T | flops_fraction | units_fraction | time_fraction (b=1) | KL nats | top-1 | loss pts "
        "| perplexity (95% CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in profile["points"]:
        ci = p["perplexity"]["ci95"]
        lines.append(
            f"| {p['routing_temperature']:.2f} | {p['flops_fraction']:.4f} | {p['units_fraction']:.4f} | "
            f"{p.get('time_fraction', 1.0):.3f} | {p['kl_nats']:.4f} | {p['top1_agreement']:.4f} | "
            f"{100 * (1 - p['top1_agreement']):.1f} | {p['perplexity']['mean']:.2f} "
            f"({ci[0]:.2f}-{ci[1]:.2f}) |"
        )
    return "\n".join(lines)
