"""The measured quality/compute profile of the routed model (DESIGN §3 profile format, schema 2).

Quality, on the **test split** (scored once, never used for a choice), through the serving path
(``RoutedLlama.forward``): per routing temperature, the mean per-token KL(exact ‖ routed) in nats,
quality loss ``100 × (exp(KL) − 1)`` %, top-1 agreement with the exact model and perplexity, each with a
95% interval over the test chunks (t-interval of chunk means; the gates are deterministic, so seeds
change nothing). The first ``ALWAYS_RUN_POSITIONS`` positions of each chunk always run exact, so they
are left out of every figure, FLOPs included. ``flops_fraction`` counts weight matmuls incl. the LM head;
``units_fraction`` the input channels multiplied in routed products.

Speed (``timing``): decode steps at batch 1/8/64, per-token gates and batch-shared mode, each routed step
paired with an exact step of an identical batch and the median ratio taken (``time_fraction_by_batch``);
one torch thread; the machine's load average is recorded beside. Chat figures come from
``chat_quality``.
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

from thermostat_runtime.calibrate import split_chunks
from thermostat_runtime.model import RoutedLlama
from thermostat_runtime.routing import ALWAYS_RUN_POSITIONS

log = logging.getLogger(__name__)
SCHEMA_PATH = Path(__file__).parent / "schemas" / "profile.schema.json"
PACKAGED_PROFILE = Path(__file__).parent / "profiles" / "smollm2-135m-cpu.json"
SCHEMA_VERSION = 2


@dataclass
class ProfileSettings:
    """How much to measure; ``quick()`` is the CI-sized run."""

    temperatures: list[float] = field(
        default_factory=lambda: [0.2, 0.35, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    )
    test_chunks: int = 64
    seq_len: int = 256
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 64])
    decode_steps: int = 8
    prompt_len: int = 16
    chat_prompts: int | None = None  # None: all committed prompts; 0: no chat figures
    chat_max_tokens: int = 48
    chat_from: float = 0.5  # chat figures at t_min and every T from here up (lower T: far past any budget)

    @classmethod
    def quick(cls) -> ProfileSettings:
        return cls(temperatures=[0.5], test_chunks=2, seq_len=64, batch_sizes=[1], decode_steps=3,
                   chat_prompts=0)  # fmt: skip


@dataclass
class _Tally:
    kl: list[float] = field(default_factory=list)  # per chunk means
    top1: list[float] = field(default_factory=list)
    log_ppl: list[float] = field(default_factory=list)
    flops: list[float] = field(default_factory=lambda: [0.0, 0.0])
    channels: list[int] = field(default_factory=lambda: [0, 0])


def _interval(samples: list[float]) -> tuple[float, float, float]:
    """Mean and 95% interval (normal; samples are >= 30 chunk means in the committed profile)."""
    mean = statistics.fmean(samples)
    if len(samples) < 2:
        return mean, mean, mean
    half = 1.96 * statistics.stdev(samples) / math.sqrt(len(samples))
    return mean, mean - half, mean + half


def score_test_split(model: RoutedLlama, chunks: np.ndarray, temps: list[float]) -> dict[float, _Tally]:
    """Every temperature on every chunk, the exact logits computed once per chunk."""
    exact_model = model.with_router(None)
    tallies = {t: _Tally() for t in temps}
    sink_flops = ALWAYS_RUN_POSITIONS * model.token_flops()
    for i, chunk in enumerate(chunks):
        ids = chunk.tolist()
        exact = exact_model.forward([exact_model.new_sequence()], [ids], all_logits=True).all_logits
        assert exact is not None
        ref = F.log_softmax(exact[0], dim=-1)[ALWAYS_RUN_POSITIONS:]
        targets = torch.from_numpy(chunk[ALWAYS_RUN_POSITIONS + 1 :])
        for t in temps:
            state = model.new_sequence(routing_temperature=t)
            out = model.forward([state], [ids], all_logits=True)
            assert out.all_logits is not None
            logp = F.log_softmax(out.all_logits[0], dim=-1)[ALWAYS_RUN_POSITIONS:]
            tally = tallies[t]
            tally.kl.append(float((ref.exp() * (ref - logp)).sum(-1).clamp_min(0).mean()))
            tally.top1.append(float((logp.argmax(-1) == ref.argmax(-1)).double().mean()))
            tally.log_ppl.append(float(-logp[:-1].gather(1, targets[:, None]).mean()))
            tally.flops[0] += state.flops_executed - sink_flops
            tally.flops[1] += state.flops_full - sink_flops
            sink_channels = ALWAYS_RUN_POSITIONS * model.config.n_layers * model.layer_channels
            tally.channels[0] += out.channels_executed - sink_channels
            tally.channels[1] += out.channels_full - sink_channels
        log.info("test chunk %d/%d scored", i + 1, len(chunks))
    return tallies


def _quality_point(t: float, tally: _Tally) -> dict[str, Any]:
    kl, kl_lo, kl_hi = _interval(tally.kl)
    top1, top1_lo, top1_hi = _interval(tally.top1)
    lp, lp_lo, lp_hi = _interval(tally.log_ppl)
    return {
        "routing_temperature": t,
        "flops_fraction": min(1.0, tally.flops[0] / tally.flops[1]),
        "units_fraction": tally.channels[0] / tally.channels[1],
        "kl_nats": max(0.0, kl),
        "kl_nats_ci95": [max(0.0, kl_lo), kl_hi],
        "quality_loss_percent": 100 * math.expm1(max(0.0, kl)),
        "quality_loss_ci95": [100 * math.expm1(max(0.0, kl_lo)), 100 * math.expm1(kl_hi)],
        "top1_agreement": top1,
        "top1_ci95": [top1_lo, min(1.0, top1_hi)],
        "perplexity": {"mean": math.exp(lp), "ci95": [math.exp(lp_lo), math.exp(lp_hi)], "seeds": 1},
    }


def paired_decode_timing(model: RoutedLlama, temperature: float, batch: int, *, steps: int,
                         prompt: list[int]) -> tuple[float, float, float]:  # fmt: skip
    """(median routed step s, median exact step s, median of the per-pair ratios), alternating steps so
    that load from other processes hits both alike."""
    routed = [model.new_sequence(routing_temperature=temperature, seed=i) for i in range(batch)]
    exact = [model.new_sequence(routing_temperature=1.0, seed=i) for i in range(batch)]
    model.forward(routed, [prompt] * batch)
    model.forward(exact, [prompt] * batch)
    routed_s, exact_s = [], []
    for step in range(steps + 1):
        tokens = [[100 + step]] * batch
        start = time.perf_counter()
        model.forward(routed, tokens)
        middle = time.perf_counter()
        model.forward(exact, tokens)
        end = time.perf_counter()
        if step:  # the first pair warms caches
            routed_s.append(middle - start)
            exact_s.append(end - middle)
    ratios = [r / e for r, e in zip(routed_s, exact_s, strict=True)]
    return statistics.median(routed_s), statistics.median(exact_s), statistics.median(ratios)


def _speed(model: RoutedLlama, t: float, settings: ProfileSettings, prompt: list[int],
           bench: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    tokens_per_s, fractions, shared = {}, {}, {}
    for batch in settings.batch_sizes:
        step_s, exact_s, ratio = paired_decode_timing(model, t, batch, steps=settings.decode_steps, prompt=prompt)
        tokens_per_s[str(batch)] = round(batch / step_s, 3)
        fractions[str(batch)] = round(ratio, 4)
        row = {"routing_temperature": t, "batch": batch, "mode": "per-token", "step_s": step_s,
               "exact_step_s": exact_s, "time_fraction": ratio}  # fmt: skip
        bench.append(row)
        if batch > 1:
            s_step, s_exact, s_ratio = paired_decode_timing(
                model.with_batch_shared(), t, batch, steps=settings.decode_steps, prompt=prompt
            )
            shared[str(batch)] = round(s_ratio, 4)
            bench.append({**row, "mode": "shared", "step_s": s_step, "exact_step_s": s_exact, "time_fraction": s_ratio})
    point: dict[str, Any] = {"tokens_per_s": tokens_per_s, "time_fraction_by_batch": fractions}
    if "1" in fractions:
        point["time_fraction"] = fractions["1"]
    if shared:
        point["time_fraction_shared_by_batch"] = shared
    return point


_SPEED_FIELDS = ("tokens_per_s", "time_fraction_by_batch", "time_fraction", "time_fraction_shared_by_batch")


def retime_profile(
    model: RoutedLlama, profile: dict[str, Any], settings: ProfileSettings
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``profile`` with its timings measured again and its quality fields kept (valid only while the gates
    are unchanged, which the router hash vouches for: a kernel change alters time, not which units run)."""
    if profile.get("router_hash") != model.router_hash:
        raise ValueError(
            f"profile router {profile.get('router_hash')} is not the loaded {model.router_hash}: "
            "its quality figures would not describe these gates; run the full profile instead"
        )
    prompt = split_chunks(model, "test", settings.test_chunks, settings.seq_len)[0, : settings.prompt_len].tolist()
    result = json.loads(json.dumps(profile))
    bench: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    for point in result["points"]:
        for name in _SPEED_FIELDS:
            point.pop(name, None)
        point.update(_speed(model, point["routing_temperature"], settings, prompt, bench))
        log.info("T=%.2f: %s", point["routing_temperature"], json.dumps(point["time_fraction_by_batch"]))
    result["timing"] = {"torch_threads": torch.get_num_threads(), "load_average_1m": [load_before, os.getloadavg()[0]],
                        "decode_steps": settings.decode_steps, "prompt_len": settings.prompt_len,
                        "retimed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}  # fmt: skip
    return result, bench


def device_name(model: RoutedLlama) -> str:
    if model.device.type == "cuda":
        return torch.cuda.get_device_name(model.device)
    return f"cpu: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def measure_profile(model: RoutedLlama, settings: ProfileSettings) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The profile JSON (DESIGN §3) and the wall-time benchmark rows."""
    chunks = split_chunks(model, "test", settings.test_chunks, settings.seq_len)
    temps = sorted({model.t_min, *[t for t in settings.temperatures if model.t_min < t < 1.0], 1.0})
    tallies = score_test_split(model, chunks, temps)
    points = [_quality_point(t, tallies[t]) for t in temps]
    chat = _chat(model, settings, temps)
    bench: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    prompt = chunks[0, : settings.prompt_len].tolist()
    for point in points:
        point.update(_speed(model, point["routing_temperature"], settings, prompt, bench))
        if point["routing_temperature"] in chat:
            point["chat"] = chat[point["routing_temperature"]]
        log.info("T=%.2f: %s", point["routing_temperature"], json.dumps(point))
    profile = {
        "schema_version": SCHEMA_VERSION,
        "model": model.name,
        "router_hash": model.router_hash,
        "device": device_name(model),
        "provenance": "measured",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "notes": _notes(settings, chunks),
        "test_tokens": int(chunks.shape[0] * (chunks.shape[1] - ALWAYS_RUN_POSITIONS)),
        "timing": {"torch_threads": torch.get_num_threads(), "load_average_1m": [load_before, os.getloadavg()[0]],
                   "decode_steps": settings.decode_steps, "prompt_len": settings.prompt_len},
        "t_min": model.t_min,
        "points": points,
    }
    return profile, bench


def _chat(model: RoutedLlama, settings: ProfileSettings, temps: list[float]) -> dict[float, dict[str, Any]]:
    if settings.chat_prompts == 0:
        return {}
    from thermostat_runtime.chat_quality import chat_prompt_ids, chat_quality, exact_answers

    prompts = chat_prompt_ids(model, settings.chat_prompts)
    answers = exact_answers(model, prompts, max_tokens=settings.chat_max_tokens)
    chosen = [t for t in temps if t == model.t_min or t >= settings.chat_from]
    return chat_quality(model, prompts, answers, chosen, max_tokens=settings.chat_max_tokens)


def _notes(settings: ProfileSettings, chunks: np.ndarray) -> str:
    return (
        f"thermostat-runtime profile: test split, {chunks.shape[0]} chunks x {chunks.shape[1]} tokens, scored "
        f"once; figures exclude the first {ALWAYS_RUN_POSITIONS} positions (always exact); 95% intervals "
        "over chunks (deterministic gates); quality_loss_percent = 100 (exp(kl_nats) - 1); time fractions: "
        f"decode steps at batch sizes {settings.batch_sizes}, each paired with an exact step, median of "
        f"{settings.decode_steps}; flops count weight matmuls incl. the LM head, not attention scores."
    )


def validate_profile(profile: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``profile`` matches the shared JSON Schema."""
    import jsonschema

    jsonschema.validate(profile, json.loads(SCHEMA_PATH.read_text()))


def benchmark_table(bench: list[dict[str, Any]]) -> str:
    """Markdown: decode step time per batch size, mode and temperature."""
    lines = ["| T | batch | mode | step ms | exact step ms | time fraction (paired median) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for row in bench:
        lines.append(
            f"| {row['routing_temperature']:.2f} | {row['batch']} | {row['mode']} | {1000 * row['step_s']:.1f} | "
            f"{1000 * row['exact_step_s']:.1f} | {row['time_fraction']:.3f} |"
        )
    return "\n".join(lines)


def profile_table(profile: dict[str, Any]) -> str:
    """Markdown: the frontier, one row per temperature."""
    lines = [
        "| T | FLOPs saved | quality loss % (95% CI) | top-1 | perplexity | time b1 / b8 / b64 | shared b8 / b64 "
        "| chat loss % | chat prefix | chat identical |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in profile["points"]:
        ql, tf, sh, chat = p["quality_loss_ci95"], p.get("time_fraction_by_batch", {}), p.get(
            "time_fraction_shared_by_batch", {}), p.get("chat", {})  # fmt: skip
        times = " / ".join(f"{tf[b]:.3f}" if b in tf else "-" for b in ("1", "8", "64"))
        shared = " / ".join(f"{sh[b]:.3f}" if b in sh else "-" for b in ("8", "64"))
        chat_cells = (
            f"{chat['quality_loss_percent']:.2f} | {chat['prefix_fraction']:.3f} | {chat['identical_share']:.3f}"
            if chat else "- | - | -"
        )
        lines.append(
            f"| {p['routing_temperature']:.2f} | {100 * (1 - p['flops_fraction']):.1f}% | "
            f"{p['quality_loss_percent']:.2f} ({ql[0]:.2f}-{ql[1]:.2f}) | {p['top1_agreement']:.4f} | "
            f"{p['perplexity']['mean']:.2f} | {times} | {shared} | {chat_cells} |"
        )
    return "\n".join(lines)
