"""Calibrating the neuron router: thresholds on the training split, choices on the validation split.

``thermostat-runtime calibrate`` (``calibrate``):
1. **Thresholds** (train split): per layer and unit, quantiles of ``|x|`` over the projection's input
   rows past the attention sinks (``activation_quantiles``).
2. **Sensitivity** (train split): the KL(exact ‖ routed) of sparsifying ONE unit at two probe levels,
   every other unit exact (``sensitivity``), fitted per unit as ``KL_u(s) = c_u s^p_u``.
3. **Allocation**: greedy, in steps of ``step`` sparsity, always spending it where the predicted KL
   cost per FLOP saved is lowest (``greedy_path``); the path is monotone (sparsity only grows).
4. **Selection** (validation split): variants (greedy over all units, greedy over the MLP only,
   uniform; deterministic or sampled gates) are scored at several savings; the one with the lowest KL
   at the target saving is kept (``select``).
5. **Schedule**: ``T`` maps to a point of the chosen path, FLOPs saved linear in ``1 - T`` from 0 at
   ``T = 1`` to ``max_saved`` at ``t_min``.
The test split is never read here. Chunks of each split are cached under ``$THERMOSTAT_CACHE_DIR``
(default /tmp/thermostat-runtime-cache), never in the tree.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from thermostat_runtime.corpus import token_chunks
from thermostat_runtime.model import RoutedLlama
from thermostat_runtime.routing import ALWAYS_RUN_POSITIONS, UNITS, NeuronRouter

log = logging.getLogger(__name__)
LEVELS = np.round(np.arange(0.0, 0.981, 0.02), 4)
MLP_UNITS = (UNITS.index("gu"), UNITS.index("down"))


@dataclass
class CalibrationSettings:
    """How much text each step reads; ``quick()`` is the CI-sized run."""

    seq_len: int = 256
    train_chunks: int = 8  # quantiles
    sensitivity_chunks: int = 2
    validation_chunks: int = 6
    probes: tuple[float, float] = (0.3, 0.6)
    step: float = 0.02
    s_max: float = 0.9
    max_saved: float = 0.45
    t_min: float = 0.05
    t_grid: int = 20
    targets: tuple[float, ...] = (0.15, 0.2, 0.25, 0.35)
    target: float = 0.2
    variants: tuple[str, ...] = ("greedy", "greedy-mlp", "uniform", "greedy-sampled")
    layers: list[int] | None = None  # sensitivity on these layers only (quick); others get the mean

    @classmethod
    def quick(cls) -> CalibrationSettings:
        return cls(seq_len=32, train_chunks=2, sensitivity_chunks=1, validation_chunks=1, targets=(0.2,),
                   variants=("greedy", "uniform"), layers=[0, 15], t_grid=5)  # fmt: skip


def cache_dir() -> Path:
    return Path(os.environ.get("THERMOSTAT_CACHE_DIR", "/tmp/thermostat-runtime-cache"))


def split_chunks(model: RoutedLlama, split: str, n: int, seq_len: int) -> np.ndarray:
    """[n, seq_len] token chunks of a corpus split (cached on disk by model, split and shape)."""
    path = cache_dir() / f"{model.name}-{split}-{n}x{seq_len}.npy"
    if path.is_file():
        cached: np.ndarray = np.load(path)
        return cached
    chunks = token_chunks(model.tokenizer.encode, split=split, seq_len=seq_len, separator=0, max_chunks=n)
    if chunks.shape[0] < n:
        raise ValueError(f"the {split} split holds only {chunks.shape[0]} chunks of {seq_len} tokens, not {n}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, chunks)
    return chunks


@dataclass
class MaskHook:
    """Masks each projection input past the sinks at ``theta[l, u]``; tallies the FLOPs kept.

    ``sampled``: keep with probability sigmoid(4 (|x|/θ - 1)) instead of ``|x| > θ`` (the sampled gate).
    """

    theta: torch.Tensor  # [L, U]; <= 0: keep all
    shapes: list[tuple[int, int]]
    sampled: bool = False
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    kept: float = 0.0
    total: float = 0.0

    def __call__(self, layer: int, unit: int, x: torch.Tensor) -> torch.Tensor:
        out_flops = 2 * self.shapes[unit][1]
        theta = float(self.theta[layer, unit])
        self.total += out_flops * x[:, ALWAYS_RUN_POSITIONS:].numel()
        if theta <= 0:
            self.kept += out_flops * x[:, ALWAYS_RUN_POSITIONS:].numel()
            return x
        if self.sampled:
            p = torch.sigmoid(4.0 * (x.abs() / theta - 1.0))
            keep = torch.rand(x.shape, generator=self.generator) < p
        else:
            keep = x.abs() > theta
        keep[:, :ALWAYS_RUN_POSITIONS] = True
        self.kept += out_flops * float(keep[:, ALWAYS_RUN_POSITIONS:].sum())
        return x * keep


def activation_quantiles(model: RoutedLlama, chunks: np.ndarray) -> np.ndarray:
    """[L, U, len(LEVELS)] quantiles of |x| per projection input (mean over batches of 2 chunks)."""
    sums = np.zeros((model.config.n_layers, len(UNITS), len(LEVELS)))
    levels = torch.tensor(LEVELS, dtype=torch.float32)
    batches = [chunks[i : i + 2] for i in range(0, len(chunks), 2)]

    def record(layer: int, unit: int, x: torch.Tensor) -> torch.Tensor:
        flat = x[:, ALWAYS_RUN_POSITIONS:].abs().flatten()
        if flat.numel() > 4_000_000:
            flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(layer))[:4_000_000]]
        sums[layer, unit] += torch.quantile(flat, levels).double().numpy()
        return x

    with torch.inference_mode():
        for batch in batches:
            model.forward_dense(torch.from_numpy(batch), record)
    result: np.ndarray = np.maximum.accumulate(sums / len(batches), axis=2)
    return result


def theta_for(quantiles: np.ndarray, sparsity: np.ndarray) -> torch.Tensor:
    """[L, U] thresholds for a sparsity allocation (-1: keep all)."""
    theta = np.full(sparsity.shape, -1.0)
    for idx in np.ndindex(sparsity.shape):
        if sparsity[idx] > 0:
            theta[idx] = np.interp(sparsity[idx], LEVELS, quantiles[idx])
    return torch.from_numpy(theta.astype(np.float32))


@dataclass
class Score:
    kl: float
    top1: float
    saved: float  # share of per-token FLOPs (incl. the LM head) not run, past the sinks


def score(model: RoutedLlama, ids: torch.Tensor, teacher: torch.Tensor, hook: MaskHook | None,
          start: tuple[int, torch.Tensor] | None = None) -> Score:  # fmt: skip
    """KL(teacher ‖ model with hook) and top-1 agreement past the sinks; optionally from a cached layer."""
    with torch.inference_mode():
        if start is None:
            logits = model.forward_dense(ids, hook)
        else:
            logits = model.forward_dense(ids, hook, start_layer=start[0], x=start[1])
        logp = F.log_softmax(logits, dim=-1)[:, ALWAYS_RUN_POSITIONS:]
        ref = teacher[:, ALWAYS_RUN_POSITIONS:]
        kl = float((ref.exp() * (ref - logp)).sum(-1).clamp_min(0).mean())
        top1 = float((logp.argmax(-1) == ref.argmax(-1)).double().mean())
    if hook is None or hook.total == 0:
        return Score(kl, top1, 0.0)
    tokens = ids.shape[0] * (ids.shape[1] - ALWAYS_RUN_POSITIONS)
    return Score(kl, top1, (hook.total - hook.kept) / (tokens * model.token_flops()))


def teacher_log_probs(model: RoutedLlama, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return F.log_softmax(model.forward_dense(ids), dim=-1)


def sensitivity(
    model: RoutedLlama, ids: torch.Tensor, quantiles: np.ndarray, settings: CalibrationSettings
) -> np.ndarray:
    """[L, U, 2] KL of sparsifying one unit alone at each probe level (layers not probed: NaN)."""
    teacher = teacher_log_probs(model, ids)
    n_layers = model.config.n_layers
    result = np.full((n_layers, len(UNITS), 2), np.nan)
    shapes = [model.unit_shape(u) for u in range(len(UNITS))]
    x = None
    with torch.inference_mode():
        for layer in range(n_layers):
            x_in = model.embed[ids] if x is None else x
            if settings.layers is None or layer in settings.layers:
                for unit in range(len(UNITS)):
                    for j, s in enumerate(settings.probes):
                        sparsity = np.zeros((n_layers, len(UNITS)))
                        sparsity[layer, unit] = s
                        hook = MaskHook(theta_for(quantiles, sparsity), shapes)
                        result[layer, unit, j] = score(model, ids, teacher, hook, (layer, x_in)).kl
                log.info("layer %d sensitivity %s", layer, np.round(result[layer, :, 1], 4).tolist())
            x = model.forward_dense(ids, start_layer=layer, x=x_in, stop_layer=layer + 1)
    return result


def greedy_path(kl_probes: np.ndarray, unit_flops: np.ndarray, settings: CalibrationSettings,
                units: tuple[int, ...], token_flops: float) -> list[tuple[float, np.ndarray]]:  # fmt: skip
    """(predicted FLOPs saved, sparsity [L, U]) after each greedy step, up to ``max_saved``."""
    lo, hi = settings.probes
    probes = np.where(np.isnan(kl_probes), np.nanmean(kl_probes, axis=0, keepdims=True), kl_probes)
    k1, k2 = np.maximum(probes[..., 0], 1e-6), np.maximum(probes[..., 1], 1e-6)
    p = np.clip(np.log(k2 / k1) / math.log(hi / lo), 1.0, 4.0)
    c = k2 / hi**p
    cost: Callable[[np.ndarray], np.ndarray] = lambda s: c * s**p  # noqa: E731
    flops = np.broadcast_to(unit_flops[None, :], c.shape)
    allowed = np.zeros(c.shape, dtype=bool)
    allowed[:, list(units)] = True
    s = np.zeros(c.shape)
    path = [(0.0, s.copy())]
    saved = 0.0
    while saved < settings.max_saved:
        nxt = np.minimum(s + settings.step, settings.s_max)
        marginal = (cost(nxt) - cost(s)) / np.maximum((nxt - s) * flops, 1e-30)
        marginal[~allowed | (nxt <= s)] = np.inf
        best = np.unravel_index(int(np.argmin(marginal)), s.shape)
        if not np.isfinite(marginal[best]):
            break
        saved += (nxt[best] - s[best]) * flops[best] / token_flops
        s[best] = nxt[best]
        path.append((saved, s.copy()))
    return path


def uniform_path(unit_flops: np.ndarray, n_layers: int, settings: CalibrationSettings,
                 token_flops: float) -> list[tuple[float, np.ndarray]]:  # fmt: skip
    per_unit = n_layers * float(unit_flops.sum()) / token_flops
    steps = np.arange(0.0, settings.s_max + 1e-9, settings.step / 4)
    return [(float(x * per_unit), np.full((n_layers, len(UNITS)), x)) for x in steps]


def at_saving(path: list[tuple[float, np.ndarray]], saved: float) -> np.ndarray:
    """The path's allocation at a predicted saving (linear between steps; monotone in ``saved``)."""
    savings = np.array([p[0] for p in path])
    k = int(np.searchsorted(savings, saved, side="right")) - 1
    if k >= len(path) - 1:
        return path[-1][1].copy()
    w = (saved - savings[k]) / max(savings[k + 1] - savings[k], 1e-12)
    result: np.ndarray = (1 - w) * path[k][1] + w * path[k + 1][1]
    return result


def select(model: RoutedLlama, paths: dict[str, list[tuple[float, np.ndarray]]], quantiles: np.ndarray,
           ids: torch.Tensor, settings: CalibrationSettings) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """The variant with the lowest validation KL at ``settings.target`` saving, and every score."""
    teacher = teacher_log_probs(model, ids)
    shapes = [model.unit_shape(u) for u in range(len(UNITS))]
    rows: list[dict[str, Any]] = []
    at_target: dict[str, float] = {}
    for variant in settings.variants:
        base = variant.removesuffix("-sampled")
        points = []
        for target in settings.targets:
            hook = MaskHook(theta_for(quantiles, at_saving(paths[base], target)), shapes,
                            sampled=variant.endswith("-sampled"))  # fmt: skip
            result = score(model, ids, teacher, hook)
            points.append(result)
            rows.append({"variant": variant, "predicted_saved": target, "saved": result.saved,
                         "kl_nats": result.kl, "top1": result.top1})  # fmt: skip
            log.info("validation %s at %.2f: saved %.4f KL %.4f top-1 %.4f", variant, target, result.saved,
                     result.kl, result.top1)  # fmt: skip
        at_target[variant] = _kl_at(points, settings.target)
    best = min(at_target, key=lambda v: at_target[v])
    return best, rows


def _kl_at(points: list[Score], saved: float) -> float:
    """log-KL interpolated at a measured saving (the sampled gate's saving differs from the target)."""
    ordered = sorted(points, key=lambda p: p.saved)
    xs = [p.saved for p in ordered]
    ys = [math.log(max(p.kl, 1e-9)) for p in ordered]
    return math.exp(float(np.interp(saved, xs, ys))) if len(xs) > 1 else math.exp(ys[0])


def build_router(path: list[tuple[float, np.ndarray]], quantiles: np.ndarray, settings: CalibrationSettings,
                 meta: dict[str, Any]) -> NeuronRouter:  # fmt: skip
    """The schedule: FLOPs saved linear in 1 - T, from 0 at T = 1 to ``max_saved`` at ``t_min``."""
    t_grid = np.round(np.linspace(settings.t_min, 1.0, settings.t_grid + 1), 6)
    sparsity = np.stack([at_saving(path, settings.max_saved * (1 - t) / (1 - settings.t_min)) for t in t_grid])
    sparsity[-1] = 0.0
    return NeuronRouter(LEVELS.copy(), quantiles, t_grid, sparsity, meta)


def calibrate(model: RoutedLlama, settings: CalibrationSettings) -> tuple[NeuronRouter, list[dict[str, Any]]]:
    """Thresholds, sensitivity, allocation and selection (module docstring); the router and the
    validation scores of every variant."""
    train = split_chunks(model, "train", settings.train_chunks, settings.seq_len)
    quantiles = activation_quantiles(model, train)
    kl = sensitivity(model, torch.from_numpy(train[: settings.sensitivity_chunks]), quantiles, settings)
    unit_flops = np.array([2.0 * i * o for i, o in map(model.unit_shape, range(len(UNITS)))])
    token_flops = float(model.token_flops())
    paths = {
        "greedy": greedy_path(kl, unit_flops, settings, tuple(range(len(UNITS))), token_flops),
        "greedy-mlp": greedy_path(kl, unit_flops, settings, MLP_UNITS, token_flops),
        "uniform": uniform_path(unit_flops, model.config.n_layers, settings, token_flops),
    }
    validation = torch.from_numpy(split_chunks(model, "validation", settings.validation_chunks, settings.seq_len))
    best, rows = select(model, paths, quantiles, validation, settings)
    # The runtime gate is deterministic; a sampled winner is reported, and its deterministic base shipped.
    shipped = best.removesuffix("-sampled")
    log.info("validation winner %s; shipping %s", best, shipped)
    meta = {
        "model": model.name,
        "variant": shipped,
        "validation_winner": best,
        "gate": "deterministic",
        "max_saved": settings.max_saved,
        "tokens": {
            "train_quantiles": int(train.size),
            "train_sensitivity": int(train[: settings.sensitivity_chunks].size),
            "validation": int(validation.numel()),
        },
        "probes": list(settings.probes),
        "sensitivity_kl": np.round(np.nan_to_num(kl, nan=-1.0), 6).tolist(),
        "selection": rows,
    }
    return build_router(paths[shipped], quantiles, settings, meta), rows


def prompt_router(model: RoutedLlama, texts: list[str], *, sparsity_at_t_min: float = 0.6) -> NeuronRouter:
    """A router from the |x| quantiles of a few texts, uniform over units, no corpus: tests and demos.

    Sparsity is linear in 1 - T, from 0 at T = 1 to ``sparsity_at_t_min`` at T = 0.05."""
    ids = [model.tokenizer.encode(text) for text in texts]
    length = min(len(i) for i in ids)
    quantiles = activation_quantiles(model, np.asarray([i[:length] for i in ids], dtype=np.int64))
    t_grid = np.array([0.05, 0.5, 1.0])
    shape = (model.config.n_layers, len(UNITS))
    sparsity = np.stack([np.full(shape, sparsity_at_t_min * (1 - t) / 0.95) for t in t_grid])
    sparsity[-1] = 0.0
    return NeuronRouter(LEVELS.copy(), quantiles, t_grid, sparsity, {"variant": "prompt-uniform"})
