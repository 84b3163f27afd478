"""The input-sparse kernels against the dense product, and the gate decided before the kernel."""

from __future__ import annotations

import pytest
import torch

from thermostat_runtime import sparse
from thermostat_runtime.routed_rows import RowRouting, _Group

pytestmark = pytest.mark.fast
# float32 sums of ~500 terms in different orders: agreement to 1e-5 relative to the output's scale.
RTOL = 1e-5


def _data(rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 576, generator=g)
    wt = torch.randn(576, 300, generator=g)
    return x, sparse.gate_mask(x, torch.full((rows, 1), 0.8)), wt


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a - b).abs().max() <= RTOL * b.abs().max()).item())


@pytest.mark.parametrize("rows", [1, 3, 8])
def test_sparse_kernels_equal_the_dense_product_on_the_kept_channels(rows: int) -> None:
    x, mask, wt = _data(rows)
    reference = (x * mask).double() @ wt.double()
    bag, bag_used = sparse.bag_matmul(x, mask, wt)
    dense, dense_used = sparse.masked_dense(x, mask, wt)
    assert _close(bag.double(), reference)
    assert _close(dense.double(), reference)
    assert torch.equal(bag_used, mask.sum(1))
    assert torch.equal(dense_used, mask.sum(1))
    assert 0.3 < float(mask.double().mean()) < 0.6  # the test really skips channels


def test_bag_rows_are_bit_identical_whatever_the_batch() -> None:
    x, mask, wt = _data(8, seed=1)
    together, _ = sparse.bag_matmul(x, mask, wt)
    for i in range(8):
        alone, _ = sparse.bag_matmul(x[i : i + 1], mask[i : i + 1], wt)
        assert torch.equal(alone[0], together[i])


def test_dense_rows_are_bit_identical_from_one_row_up() -> None:
    # One torch thread, the serving default: with two, the CPU matmul splits some row counts (5 here)
    # across threads differently and a row's rounding changes.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, _, wt = _data(64, seed=2)
        together = sparse.dense(x, wt)
        for n in (1, 2, 3, 5, 17, 40):
            assert torch.equal(sparse.dense(x[:n], wt), together[:n])
    finally:
        torch.set_num_threads(threads)


def test_shared_kernel_runs_one_set_and_each_row_only_its_own_channels() -> None:
    x, mask, wt = _data(8, seed=3)
    theta = torch.full((8, 1), 0.8)
    out, used, shared = sparse.shared_matmul(x, mask, theta, wt)
    in_shared = torch.zeros(576, dtype=torch.bool)
    in_shared[shared] = True
    reference = (x * (mask & in_shared)).double() @ wt.double()
    assert _close(out.double(), reference)
    assert len(shared) == int(torch.ceil(mask.sum(1).double().mean()))
    assert torch.equal(used, torch.full((8,), len(shared)))


def test_the_gate_is_decided_before_and_regardless_of_the_kernel() -> None:
    x, _, wt = _data(4, seed=4)
    thresholds = torch.full((4, 1, 1), 0.8)
    masks, outs = [], []
    for kind in ("bag", "dense"):
        routing = RowRouting(4, thresholds, [_Group(None, kind)], True, torch.zeros(4, dtype=torch.long),
                             torch.zeros(4, dtype=torch.float64))  # fmt: skip
        outs.append(routing.project(0, 0, x, wt))
        masks.append(routing.masks[0])
        assert routing.gate_hashes()
    assert torch.equal(masks[0], masks[1])
    assert _close(outs[0], outs[1])


def test_the_kernel_plan_changes_neither_the_gates_nor_the_output_beyond_rounding() -> None:
    x, _, wt = _data(8, seed=5)
    thresholds = torch.full((8, 1, 1), 0.8)
    sel = torch.tensor([True, False] * 4)[:, None, None]
    masks, outs = [], []
    for status in (0, 1, 2):  # every row bag, every row masked-dense, half and half
        routing = RowRouting(8, thresholds, [_Group(None, "bag")], True, torch.zeros(8, dtype=torch.long),
                             torch.zeros(8, dtype=torch.float64), dense_status=[[status]], dense_sel=sel)  # fmt: skip
        outs.append(routing.project(0, 0, x, wt))
        masks.append(routing.masks[0])
        routing.settle()
        assert torch.equal(routing.channels, masks[-1].sum(1))
    assert torch.equal(masks[0], masks[1])
    assert torch.equal(masks[0], masks[2])
    assert _close(outs[1], outs[0])
    assert _close(outs[2], outs[0])
    assert torch.equal(outs[2][1::2], outs[0][1::2])
    assert torch.equal(outs[2][0::2], outs[1][0::2])


def test_the_dense_plan_starts_where_the_bag_loses() -> None:
    assert sparse.dense_from_keep(sparse.DENSE_PLAN_ROWS - 1) is None
    small, large = sparse.dense_from_keep(sparse.DENSE_PLAN_ROWS), sparse.dense_from_keep(64)
    assert small is not None
    assert large is not None
    assert all(a >= b for a, b in zip(small, large, strict=True))  # more rows: dense from a lower kept share
