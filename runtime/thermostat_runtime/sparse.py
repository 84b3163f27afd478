"""Input-sparse matrix products: each row multiplies only its kept input channels.

Weights are stored transposed (``wt`` is [in, out], contiguous), so a kept channel is one contiguous row
of ``wt``. Three kernels, one contract: ``out[r] = sum over kept i of x[r, i] * wt[i]``.

* ``bag_matmul`` (decode rows): ``embedding_bag`` with ``per_sample_weights``, one bag per row. Each
  bag is summed on its own, so a row's result is bit-identical whatever else is in the batch; skipped
  rows of ``wt`` are never read. This is the per-token kernel at every batch size.
* ``masked_dense`` (prefill rows): zero the skipped channels and run one dense product, padded to at
  least ``MIN_DENSE_ROWS`` rows (with one torch thread, torch's CPU matmul computes a row the same way
  for any row count from 4 up; 1-3 rows take a different path; with several threads the split of rows
  across threads can change a row's rounding). A prompt is prefilled on its own, so its rows depend
  only on the request's tokens either way. Same quality as the bag, no time saved: prompts are prefilled
  densely, the saving is in decode.
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
import torch.nn.functional as F  # noqa: N812 - the torch convention

MIN_DENSE_ROWS = 4


def gate_mask(x: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Keep mask [N, in]: ``|x| > θ`` per row (θ [N, 1]; -inf keeps everything). Elementwise, so it
    depends only on the row itself, and it is computed before any kernel is chosen."""
    return x.abs() > thresholds


def bag_matmul(x: torch.Tensor, mask: torch.Tensor, wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sparse product via ``embedding_bag``; (out [N, out], channels used per row [N])."""
    rows, cols = mask.nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=x.shape[0])
    offsets = torch.zeros_like(counts)
    if x.shape[0] > 1:
        offsets[1:] = counts.cumsum(0)[:-1]
    out = F.embedding_bag(cols, wt, offsets, mode="sum", per_sample_weights=x[rows, cols])
    return out, counts


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
