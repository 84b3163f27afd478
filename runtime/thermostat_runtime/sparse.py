"""Input-sparse matrix products: each row multiplies only its kept input channels.

Weights are stored transposed (``wt`` is [in, out], contiguous), so a kept channel is one contiguous row
of ``wt``. Three kernels, one contract: ``out[r] = sum over kept i of x[r, i] * wt[i]``.

* ``bag_matmul`` (decode rows, few of them): ``embedding_bag`` with ``per_sample_weights``, one bag per
  row. Each bag is summed on its own, so a row's result is bit-identical whatever else is in the batch;
  skipped rows of ``wt`` are never read. One row (batch-1 decode) takes a short path: one ``nonzero``,
  one gather, one bag, no per-row bookkeeping. Once ``fused`` has built and checked its C++ op (CPU),
  that op runs the one-row case instead: the same bits in one pass (``start_fused_build``).
* ``masked_dense`` (prefill rows; decode rows where the bag loses, see ``kernel_choice``): zero the
  skipped channels and run one dense product, padded to at least ``MIN_DENSE_ROWS`` rows (torch's CPU
  matmul computes a row the same way for any row count from 4 up; 1-3 rows take a different path). Same
  gates, same output to float rounding, no weight rows skipped.
* ``shared_matmul`` (batch-shared mode): one channel set ``S`` per step, the ``k`` channels with the
  largest aggregate normalized magnitude over the batch (``k`` = the rows' mean kept count); each row runs
  ``S`` ∩ its own kept set (the product runs all of ``S`` for every row: that is the count). Reads
  ``|S|`` rows of ``wt`` once for the whole batch, so it saves time at
  large batch, but a row's result then depends on its neighbours (the mode is off by default).

Every kernel returns the number of input channels each row actually multiplied, counted from the
indices or mask it was given, for the executed-FLOPs tally.
"""

from __future__ import annotations

import torch

from thermostat_runtime import fused

MIN_DENSE_ROWS = 4
# Kernel plan by decode rows per step: (from this many rows, per unit qkv/o/gu/down the expected kept
# share at or above which masked-dense beats the bag). Measured on SmolLM2-135M's weights, one torch
# thread, 30 layers cycled so the weights come from memory (docs/BENCHMARKS.md, "kernel plan"); below
# DENSE_PLAN_ROWS rows the bag wins at every kept share.
DENSE_PLAN_ROWS = 4
_DENSE_FROM_KEEP = (
    (64, (0.25, 0.2, 0.35, 0.25)),
    (32, (0.35, 0.35, 0.4, 0.3)),
    (8, (0.45, 0.4, 0.65, 0.4)),
    (DENSE_PLAN_ROWS, (0.5, 0.5, 1.01, 0.5)),
)
_SUM = 0  # embedding_bag mode code for "sum"
_ZERO_OFFSETS: dict[torch.device, torch.Tensor] = {}


def dense_from_keep(rows: int) -> tuple[float, ...] | None:
    """Per unit, the kept share from which ``rows`` decode rows run masked-dense (None: bags only)."""
    for at_least, limits in _DENSE_FROM_KEEP:
        if rows >= at_least:
            return limits
    return None


def gate_mask(x: torch.Tensor, thresholds: torch.Tensor | float) -> torch.Tensor:
    """Keep mask [N, in]: ``|x| > θ`` per row (θ [N, 1] or one float; -inf keeps everything).
    Elementwise, so it depends only on the row itself, and it is computed before any kernel is chosen."""
    return x.abs() > thresholds


def _bag(wt: torch.Tensor, cols: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    # The aten op directly: F.embedding_bag's Python checks cost as much as a small bag.
    return torch.embedding_bag(wt, cols, offsets, False, _SUM, False, weights, False, None)[0]


def bag_matmul(x: torch.Tensor, mask: torch.Tensor, wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sparse product via ``embedding_bag`` (one row: the fused op once built, same bits); (out
    [N, out], channels used per row [N]). Several rows stay on the bag: the fused op measured no faster
    there (docs/BENCHMARKS.md, "fused decode-row kernel")."""
    op = fused.op() if x.shape[0] == 1 else None
    if op is not None and x.device.type == "cpu":
        return op(x.contiguous(), mask.contiguous(), wt)
    return embedding_bag_matmul(x, mask, wt)


def embedding_bag_matmul(x: torch.Tensor, mask: torch.Tensor, wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``bag_matmul`` through ``embedding_bag`` always (the reference the fused op is checked against)."""
    if x.shape[0] == 1:
        cols = mask.view(-1).nonzero().view(-1)
        offsets = _ZERO_OFFSETS.get(x.device)
        if offsets is None:
            offsets = _ZERO_OFFSETS.setdefault(x.device, torch.zeros(1, dtype=torch.long, device=x.device))
        out = _bag(wt, cols, offsets, x.view(-1).index_select(0, cols))
        return out, cols.new_full((1,), cols.shape[0])
    rows, cols = mask.nonzero(as_tuple=True)
    counts = mask.sum(1)
    offsets = counts.cumsum(0).sub_(counts)
    return _bag(wt, cols, offsets, x[rows, cols]), counts


def dense(x: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """``x @ wt`` with at least ``MIN_DENSE_ROWS`` rows, so each row is computed the same way for any
    batch shape (bypass rows of routed batches never come here: they use the plain product)."""
    n = x.shape[0]
    if n >= MIN_DENSE_ROWS:
        return x @ wt
    padded = torch.cat([x, x.new_zeros(MIN_DENSE_ROWS - n, x.shape[1])])
    return (padded @ wt)[:n]


def masked_dense(x: torch.Tensor, mask: torch.Tensor, wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense product of the masked input; (out, channels kept per row)."""
    return dense(x * mask, wt), mask.sum(1)


def shared_matmul(
    x: torch.Tensor, mask: torch.Tensor, thresholds: torch.Tensor, wt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch-shared product; (out, channels each row multiplied (|S|), the shared set S)."""
    counts = mask.sum(1)
    k = int(torch.ceil(counts.double().mean()))
    if k >= x.shape[1]:
        return dense(x * mask, wt), counts, torch.arange(x.shape[1], device=x.device)
    # Normalized magnitude: a row's channel scores 1 at its own threshold, whatever that row's T.
    scale = torch.where(torch.isfinite(thresholds) & (thresholds > 0), thresholds, torch.ones_like(thresholds))
    score = (x.abs() / scale).sum(0)
    shared = torch.topk(score, k, sorted=False).indices.sort().values
    kept = mask[:, shared]
    out = dense(x[:, shared] * kept, wt.index_select(0, shared))
    return out, torch.full_like(counts, k), shared


def _fused_agrees(op: fused.Op) -> bool:
    """True if ``op`` gives the bag's bits on the model's shapes, one to five rows, several kept shares."""
    generator = torch.Generator().manual_seed(0)
    for rows, in_dim, out_dim in ((1, 576, 3072), (1, 1536, 576), (3, 576, 960), (5, 576, 576)):
        wt = torch.randn(in_dim, out_dim, generator=generator)
        for keep in (1.0, 0.8, 0.3, 0.0):
            x = torch.randn(rows, in_dim, generator=generator)
            mask = torch.rand(rows, in_dim, generator=generator) < keep
            want, want_used = embedding_bag_matmul(x, mask, wt)
            got, used = op(x, mask, wt)
            if not (torch.equal(got, want) and torch.equal(used, want_used)):
                return False
    return True


def start_fused_build() -> None:
    """Start building the fused decode-row op in the background (``fused``); the bag runs meanwhile."""
    fused.start_build(_fused_agrees)
