"""Recovery fine-tune (issue 11 item 5): low-rank adapters that make the model tolerate its own sparsity.

Each routed product ``y = x_kept @ W`` gets a rank-``r`` correction computed from the channels its gate
*skipped*: ``y = x_kept @ W + ((x - x_kept) @ A) @ B``. The correction is zero wherever nothing is
skipped, so the exact model (``T = 1``, which bypasses routing) is untouched and stays the teacher, and
the sink positions (every channel kept) are exact too. ``A`` [in, r], ``B`` [r, out] start from the
truncated SVD of ``W`` (the best rank-``r`` stand-in for the skipped part when nothing is known of
its inputs) and are trained by distillation: KL(exact ‖ routed + adapters) on the training split, each
step at a routing temperature drawn from a range (sampled sparsity), the model frozen.

Training is resumable: a checkpoint (adapters, optimizer, step, RNG) is written every
``checkpoint_every`` steps and picked up on the next run. ``evaluate`` scores a split the same way
(masked products, the router's thresholds), without and with the adapters, in one pass per chunk.
The correction costs ``2 r (in + out)`` FLOPs per routed product and row, counted in ``saved``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from thermostat_runtime.model import RoutedLlama
from thermostat_runtime.routing import ALWAYS_RUN_POSITIONS, UNITS, NeuronRouter

log = logging.getLogger(__name__)
ADAPTER_FORMAT = "thermostat-sparsity-adapters/1"


@dataclass
class Adapters:
    """Per layer and unit, the low-rank pair (A [in, r], B [r, out]) of the skipped-channel correction."""

    a: list[list[torch.Tensor]]
    b: list[list[torch.Tensor]]

    @property
    def rank(self) -> int:
        return int(self.a[0][0].shape[1])

    def parameters(self) -> list[torch.Tensor]:
        return [t for row in (*self.a, *self.b) for t in row]

    def flops(self, unit: int) -> int:
        """Per row: FLOPs of one unit's correction."""
        return 2 * self.rank * (int(self.a[0][unit].shape[0]) + int(self.b[0][unit].shape[1]))

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for layer, (row_a, row_b) in enumerate(zip(self.a, self.b, strict=True)):
            for unit, name in enumerate(UNITS):
                out[f"{layer}.{name}.a"] = row_a[unit].detach().contiguous()
                out[f"{layer}.{name}.b"] = row_b[unit].detach().contiguous()
        return out

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], n_layers: int) -> Adapters:
        a = [[state[f"{layer}.{name}.a"].float() for name in UNITS] for layer in range(n_layers)]
        b = [[state[f"{layer}.{name}.b"].float() for name in UNITS] for layer in range(n_layers)]
        return cls(a, b)


def svd_init(model: RoutedLlama, rank: int) -> Adapters:
    """A = U_r S_r, B = V_r^T of every routed weight ``W`` [in, out]."""
    a, b = [], []
    for layer in range(model.config.n_layers):
        row_a, row_b = [], []
        for unit in range(len(UNITS)):
            left, right = _top_singular(model.weights_t[layer][unit].double(), rank)
            row_a.append(left.float().requires_grad_())
            row_b.append(right.float().contiguous().requires_grad_())
        a.append(row_a)
        b.append(row_b)
    return Adapters(a, b)


def _top_singular(w: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(U_r S_r, V_r^T) of ``w`` from the eigenvectors of its smaller Gram matrix (deterministic, and a
    576 x 576 eigh instead of a full SVD)."""
    if w.shape[0] <= w.shape[1]:
        values, vectors = torch.linalg.eigh(w @ w.T)
        u = vectors[:, -rank:].flip(1)
        s = values[-rank:].flip(0).clamp_min(1e-30).sqrt()
        return u * s, (u.T @ w) / s[:, None]
    values, vectors = torch.linalg.eigh(w.T @ w)
    v = vectors[:, -rank:].flip(1)
    return w @ v, v.T.contiguous()


def save_adapters(adapters: Adapters, path: Path, meta: dict[str, Any]) -> str:
    """Write a safetensors file (float16: half the bytes; the correction is a small term); its sha256."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() for k, v in adapters.state().items()}
    save_file(state, str(path), metadata={"format": ADAPTER_FORMAT, **{k: str(v) for k, v in meta.items()}})
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class _Tally:
    kept: float = 0.0  # FLOPs of the routed products run (+ corrections)
    total: float = 0.0  # FLOPs of the routed products, exact


def adapted_logits(
    model: RoutedLlama,
    ids: torch.Tensor,
    theta: torch.Tensor,
    adapters: Adapters | None,
    tally: _Tally | None = None,
) -> torch.Tensor:
    """Logits [B, S, V] with every projection input past the sinks gated at ``theta[l, u]`` (<= 0: all
    kept) and, with ``adapters``, the skipped channels' low-rank correction; differentiable in the adapters."""

    def proj(layer: int, unit: int, x: torch.Tensor) -> torch.Tensor:
        wt = model.weights_t[layer][unit]
        rows = x[:, ALWAYS_RUN_POSITIONS:].numel() // x.shape[-1]
        if tally is not None:
            tally.total += 2.0 * wt.shape[1] * x.shape[-1] * rows
        th = float(theta[layer, unit])
        if th <= 0:
            if tally is not None:
                tally.kept += 2.0 * wt.shape[1] * x.shape[-1] * rows
            return x @ wt
        keep = x.detach().abs() > th
        keep[:, :ALWAYS_RUN_POSITIONS] = True
        kept = x * keep
        if tally is not None:
            tally.kept += 2.0 * wt.shape[1] * float(keep[:, ALWAYS_RUN_POSITIONS:].sum())
            if adapters is not None:
                tally.kept += adapters.flops(unit) * rows
        out = kept @ wt
        if adapters is not None:
            out = out + ((x - kept) @ adapters.a[layer][unit]) @ adapters.b[layer][unit]
        return out

    return _network(model, ids, proj)


def _network(model: RoutedLlama, ids: torch.Tensor, proj: Any) -> torch.Tensor:
    """``RoutedLlama.forward_dense``'s network with a product of our own (the adapters add to outputs)."""
    from thermostat_runtime.model import DOWN, GU, OUT, QKV

    cos, sin = model._rope_tables(torch.arange(ids.shape[1], device=model.device))
    x = model.embed[ids]
    for layer in range(model.config.n_layers):
        h = model._rmsnorm(x, model.attn_norm[layer])
        q, k, v = model._split_qkv(proj(layer, QKV, h), cos, sin)
        o = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=True
        )
        x = x + proj(layer, OUT, o.transpose(1, 2).flatten(2))
        h = model._rmsnorm(x, model.ffn_norm[layer])
        x = x + proj(layer, DOWN, model._mlp_act(proj(layer, GU, h)))
    return model._rmsnorm(x, model.norm) @ model.lm_head.T


def kl_past_sinks(teacher_logp: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean per-token KL(teacher ‖ student) in nats, sink positions left out."""
    logp = F.log_softmax(logits, dim=-1)[:, ALWAYS_RUN_POSITIONS:]
    ref = teacher_logp[:, ALWAYS_RUN_POSITIONS:]
    return (ref.exp() * (ref - logp)).sum(-1).mean()


@dataclass
class TrainSettings:
    rank: int = 4
    steps: int = 120
    batch: int = 2
    seq_len: int = 256
    lr: float = 3e-4
    t_range: tuple[float, float] = (0.45, 0.8)
    checkpoint_every: int = 10
    seed: int = 0
    log: list[dict[str, float]] = field(default_factory=list)


def train(model: RoutedLlama, router: NeuronRouter, chunks: np.ndarray, settings: TrainSettings,
          checkpoint: Path) -> Adapters:  # fmt: skip
    """Distil the adapters (module docstring), resuming from ``checkpoint`` if it exists."""
    adapters = svd_init(model, settings.rank)
    optimizer = torch.optim.Adam(adapters.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    step = 0
    if checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False)
        loaded = Adapters.from_state(saved["adapters"], model.config.n_layers)
        for mine, theirs in zip(adapters.parameters(), loaded.parameters(), strict=True):
            mine.data.copy_(theirs)
        optimizer.load_state_dict(saved["optimizer"])
        for group in optimizer.param_groups:  # a resumed run may change the rate (logged with each step)
            group["lr"] = settings.lr
        generator.set_state(saved["rng"])
        step, settings.log[:] = saved["step"], saved["log"]
        log.info("resumed at step %d", step)
    while step < settings.steps:
        started = time.process_time()
        pick = torch.randint(0, len(chunks), (settings.batch,), generator=generator)
        low, high = settings.t_range
        t = low + (high - low) * float(torch.rand(1, generator=generator))
        ids = torch.from_numpy(chunks[pick.numpy()])
        with torch.no_grad():
            teacher = F.log_softmax(model.forward_dense(ids), dim=-1)
        loss = kl_past_sinks(teacher, adapted_logits(model, ids, router.thresholds(t), adapters))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        step += 1
        kl, cpu_s = float(loss.detach()), time.process_time() - started
        settings.log.append({"step": step, "lr": settings.lr, "T": t, "kl": kl, "cpu_s": cpu_s})
        log.info("step %d T=%.3f KL %.4f (%.1f CPU-s)", step, t, kl, cpu_s)
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            state = {"adapters": adapters.state(), "optimizer": optimizer.state_dict(), "rng": generator.get_state(),
                     "step": step, "log": settings.log}  # fmt: skip
            torch.save(state, checkpoint.with_suffix(".tmp"))
            checkpoint.with_suffix(".tmp").replace(checkpoint)
    return adapters


def evaluate(model: RoutedLlama, router: NeuronRouter, chunks: np.ndarray, temps: list[float],
             adapters: Adapters | None) -> list[dict[str, float]]:  # fmt: skip
    """Per T: KL, quality loss and FLOPs saved (share of per-token FLOPs incl. the LM head) on ``chunks``."""
    rows = []
    ids_all = torch.from_numpy(chunks)
    with torch.no_grad():
        teacher = [F.log_softmax(model.forward_dense(ids_all[i : i + 1]), dim=-1) for i in range(len(chunks))]
        for t in temps:
            tally, kls = _Tally(), []
            for i in range(len(chunks)):
                logits = adapted_logits(model, ids_all[i : i + 1], router.thresholds(t), adapters, tally)
                kls.append(float(kl_past_sinks(teacher[i], logits)))
            tokens = chunks.shape[0] * (chunks.shape[1] - ALWAYS_RUN_POSITIONS)
            saved = (tally.total - tally.kept) / (tokens * model.token_flops())
            kl = float(np.mean(kls))
            rows.append({"T": t, "saved": saved, "kl_nats": kl, "loss_percent": 100 * float(np.expm1(kl)),
                         "kl_se": float(np.std(kls, ddof=1) / np.sqrt(len(kls))) if len(kls) > 1 else 0.0})  # fmt: skip
            log.info("eval T=%.2f adapters=%s: saved %.4f KL %.4f", t, adapters is not None, saved, kl)
    return rows
