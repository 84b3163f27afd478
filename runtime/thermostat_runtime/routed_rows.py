"""One forward call's rows and their routing: which kernel each row's projections use, and what they cost.

Rows are all new tokens of all sequences of a ``RoutedLlama.forward`` call, concatenated. A sequence at
``T = 1`` is an exact row (plain dense product, as the unrouted model). A routed sequence's rows get
per-layer, per-unit |x| thresholds from the router (its first ``ALWAYS_RUN_POSITIONS`` positions keep
every channel); the gate mask ``|x| > θ`` is computed first, from the row alone, and only then is the
kernel chosen, by the row's own request shape: a prefill row goes through ``sparse.masked_dense``; a
decode row (the sequence sends one token) through ``sparse.bag_matmul``, except where the kernel plan
says the bag loses: with ``sparse.DENSE_PLAN_ROWS`` or more decode rows in the step, a (layer, unit)
whose kept share at the row's T reaches ``sparse.dense_from_keep(rows)`` runs masked-dense. The plan
depends on the row count and the row's own T only, and replay can force the row count
(``kernel_rows``), so a logged step's kernels can be rerun at batch 1. With ``shared=True``
(batch-shared mode) two or more decode rows share one channel set per step (``sparse.shared_matmul``).

The per-row tally counts the channels each kernel really multiplied; executed FLOPs are
``2 × out_dim`` per channel. With ``trace`` on, each row's gate mask over all layers and units is
hashed (``gate_hashes``), the per-token routing record of the request log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from thermostat_runtime import sparse
from thermostat_runtime.routing import ALWAYS_RUN_POSITIONS, NeuronRouter


@dataclass
class _Group:
    index: torch.Tensor | None  # rows of this group (None: every row of the call)
    kind: str  # "exact" | "bag" | "dense" | "shared"


@dataclass
class RowRouting:
    """Routing of one forward call's rows (see the module docstring)."""

    n_rows: int
    thresholds: torch.Tensor  # [N, L, U]; -inf: keep all (sinks)
    groups: list[_Group]
    trace: bool
    channels: torch.Tensor  # [N] channels multiplied, all routed units (complete after ``settle``)
    flops: torch.Tensor  # [N] float64 FLOPs of the routed units' products (complete after ``settle``)
    masks: list[torch.Tensor] = field(default_factory=list)  # traced: [N, in] per (layer, unit)
    shared_sets: list[torch.Tensor] = field(default_factory=list)
    # One threshold per (layer, unit) shared by every row (one T, no sink rows): a float compare.
    uniform: list[list[float]] | None = None
    # Decode rows the kernel plan was chosen for (0: fewer than sparse.DENSE_PLAN_ROWS, bags throughout).
    kernel_rows: int = 0
    # Per (layer, unit) of the bag group: 0 all rows bag, 1 all masked-dense, 2 mixed (see ``dense_sel``).
    dense_status: list[list[int]] | None = None
    dense_sel: torch.Tensor | None = None  # [N, L, U] bool: this row's product runs masked-dense
    _pending: list[tuple[torch.Tensor | None, torch.Tensor, int]] = field(default_factory=list)

    def project(self, layer: int, unit: int, x: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        """``x @ wt`` for every row, each row through its group's kernel on its own kept channels."""
        if len(self.groups) == 1 and self.groups[0].index is None:
            out, used, mask = self._run(self.groups[0].kind, layer, unit, x, wt, None)
            self._pending.append((None, used, wt.shape[1]))
            if self.trace:
                self.masks.append(mask if mask is not None else torch.ones((x.shape[0], 1), dtype=torch.bool))
            return out
        out = x.new_empty((x.shape[0], wt.shape[1]))
        full_mask = torch.ones(x.shape, dtype=torch.bool) if self.trace else None
        for group in self.groups:
            assert group.index is not None
            part, used, mask = self._run(group.kind, layer, unit, x[group.index], wt, group.index)
            out[group.index] = part
            self._pending.append((group.index, used, wt.shape[1]))
            if full_mask is not None and mask is not None:
                full_mask[group.index] = mask.cpu()
        if full_mask is not None:
            self.masks.append(full_mask)
        return out

    def _theta(self, layer: int, unit: int, index: torch.Tensor | None, device: torch.device) -> torch.Tensor | float:
        if self.uniform is not None and index is None:
            return self.uniform[layer][unit]
        theta = self.thresholds[:, layer, unit] if index is None else self.thresholds[index, layer, unit]
        return theta[:, None].to(device)

    def _run(  # noqa: PLR0917 - private, one call site
        self, kind: str, layer: int, unit: int, x: torch.Tensor, wt: torch.Tensor, index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if kind == "exact":
            return x @ wt, torch.full((x.shape[0],), x.shape[1], dtype=torch.long), None
        theta = self._theta(layer, unit, index, x.device)
        mask = sparse.gate_mask(x, theta)
        if kind == "bag":
            out, used = self._decode_product(layer, unit, x, mask, wt, index)
        elif kind == "dense":
            out, used = sparse.masked_dense(x, mask, wt)
        else:
            assert isinstance(theta, torch.Tensor)
            out, used, shared = sparse.shared_matmul(x, mask, theta, wt)
            mask = mask & torch.zeros_like(mask).index_fill_(1, shared, True)
            self.shared_sets.append(shared)
        return out, used, mask

    def _decode_product(  # noqa: PLR0917 - private, one call site
        self, layer: int, unit: int, x: torch.Tensor, mask: torch.Tensor, wt: torch.Tensor, index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bag or masked-dense per row, as the kernel plan chose from the row's own T (same gates)."""
        status = 0 if self.dense_status is None else self.dense_status[layer][unit]
        if status == 0:
            return sparse.bag_matmul(x, mask, wt)
        if status == 1:
            return sparse.masked_dense(x, mask, wt)
        assert self.dense_sel is not None
        sel = self.dense_sel[:, layer, unit] if index is None else self.dense_sel[index, layer, unit]
        on, off = sel.nonzero().view(-1), (~sel).nonzero().view(-1)
        out, used = x.new_empty((x.shape[0], wt.shape[1])), mask.new_empty(x.shape[0], dtype=torch.long)
        out[on], used[on] = sparse.masked_dense(x[on], mask[on], wt)
        out[off], used[off] = sparse.bag_matmul(x[off], mask[off], wt)
        return out, used

    def settle(self) -> None:
        """Fold the per-product channel counts into ``channels`` and ``flops`` (once per call, not per
        product: a few tensor ops instead of four per routed product)."""
        whole = [(used, out_dim) for index, used, out_dim in self._pending if index is None]
        if whole:
            used = torch.stack([u for u, _ in whole]).cpu()
            dims = torch.tensor([2 * d for _, d in whole], dtype=torch.float64)
            self.channels += used.sum(0)
            self.flops += (used.double() * dims[:, None]).sum(0)
        for index, part, out_dim in self._pending:
            if index is not None:
                self.channels.index_add_(0, index.cpu(), part.cpu())
                self.flops.index_add_(0, index.cpu(), part.cpu().double() * (2 * out_dim))
        self._pending.clear()

    def gate_hashes(self) -> list[str]:
        """Per row: a short hash of its gate mask over every layer and unit (in order)."""
        if not self.masks:
            return []
        packed = np.packbits(torch.cat(self.masks, dim=1).numpy(), axis=1)
        return [hashlib.blake2b(row.tobytes(), digest_size=8).hexdigest() for row in packed]


def plan_rows(
    router: NeuronRouter | None,
    temps: Sequence[float],
    positions: Sequence[np.ndarray],
    *,
    shared: bool,
    trace: bool,
    kernel_rows: int = 0,
) -> RowRouting | None:
    """The routing of a call (None: no sequence routes, the exact path runs). ``kernel_rows`` > 0 plans
    the kernels as for that many decode rows (replay of a request served in a larger batch)."""
    if router is None or all(t >= 1.0 for t in temps):
        return None
    n = sum(len(p) for p in positions)
    thresholds = torch.full((n, router.n_layers, router.quantiles.shape[1]), -torch.inf)
    kinds: list[str] = []
    start = 0
    decode_rows = sum(1 for t, p in zip(temps, positions, strict=True) if t < 1.0 and len(p) == 1)
    for t, pos in zip(temps, positions, strict=True):
        if t >= 1.0:
            kind = "exact"
        elif len(pos) == 1:
            kind = "shared" if shared and decode_rows > 1 else "bag"
        else:
            kind = "dense"
        if kind != "exact":
            routed = np.nonzero(pos >= ALWAYS_RUN_POSITIONS)[0] + start
            thresholds[torch.from_numpy(routed)] = router.thresholds(t)
        kinds += [kind] * len(pos)
        start += len(pos)
    groups = _groups(kinds)
    plan = _kernel_plan(router, temps, positions, kinds, groups, kernel_rows or decode_rows)
    uniform = None
    if len(groups) == 1 and kinds[0] in {"bag", "dense"} and bool((thresholds == thresholds[0]).all()):
        uniform = thresholds[0].tolist()
    return RowRouting(
        n_rows=n,
        thresholds=thresholds,
        groups=groups,
        trace=trace,
        channels=torch.zeros(n, dtype=torch.long),
        flops=torch.zeros(n, dtype=torch.float64),
        uniform=uniform,
        **plan,
    )


def _kernel_plan(  # noqa: PLR0917 - private, one call site
    router: NeuronRouter,
    temps: Sequence[float],
    positions: Sequence[np.ndarray],
    kinds: list[str],
    groups: list[_Group],
    rows: int,
) -> dict[str, Any]:
    """Which decode rows' products run masked-dense: a function of (the row's T, its position, the
    number of decode rows) only, never of a neighbour's activations (``sparse.dense_from_keep``)."""
    from_keep = sparse.dense_from_keep(rows)
    bag = [g for g in groups if g.kind == "bag"]
    if from_keep is None or not bag:
        return {}
    sel = torch.zeros((len(kinds), router.n_layers, len(from_keep)), dtype=torch.bool)
    start, limit = 0, torch.tensor(from_keep)
    for t, pos in zip(temps, positions, strict=True):
        if kinds[start] == "bag":
            keep = torch.from_numpy(1.0 - router.sparsity_at(t))
            sel[start : start + len(pos)] = (keep >= limit) if pos[0] >= ALWAYS_RUN_POSITIONS else True
        start += len(pos)
    part = sel if bag[0].index is None else sel[bag[0].index]
    every, some = part.all(0), part.any(0)
    status = torch.where(every, 1, torch.where(some, 2, 0)).tolist()
    return {"kernel_rows": rows, "dense_status": status, "dense_sel": sel}


def _groups(kinds: list[str]) -> list[_Group]:
    distinct = sorted(set(kinds))
    if len(distinct) == 1:
        return [_Group(None, distinct[0])]
    return [
        _Group(torch.tensor([i for i, k in enumerate(kinds) if k == kind], dtype=torch.long), kind)
        for kind in distinct
    ]
