"""The fused decode-row op: built where a compiler is, bit-identical to embedding_bag, and used by the bag."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from tests.waiting import wait_until

from thermostat_runtime import fused, sparse

pytestmark = pytest.mark.slow  # the first build compiles C++ (~1-2 min on 2 shared cores; cached after)


@pytest.fixture(scope="module")
def built() -> fused.Op:
    if not fused.enabled():
        pytest.skip(f"{fused.ENV}=0")
    if shutil.which("c++") is None or (shutil.which("ninja") is None and not _ninja_module()):
        pytest.skip("no C++ compiler or ninja: the bag runs (the fallback)")
    sparse.start_fused_build()
    assert fused.wait_ready(300), "the fused op's build did not finish in 5 minutes (a live builder holds its flock?)"
    op = fused.op()
    assert op is not None, "a compiler is here, yet the fused op was not built or failed its bit check"
    return op


def _ninja_module() -> bool:
    try:
        import ninja  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(("rows", "in_dim", "out_dim", "keep"), [(1, 576, 3072, 0.88), (1, 1536, 576, 0.5),
                                                                  (2, 576, 960, 0.7), (7, 576, 576, 0.0)])  # fmt: skip
def test_fused_op_gives_the_bags_bits_and_counts(built: fused.Op, rows: int, in_dim: int, out_dim: int,
                                                 keep: float) -> None:  # fmt: skip
    g = torch.Generator().manual_seed(rows)
    x, wt = torch.randn(rows, in_dim, generator=g), torch.randn(in_dim, out_dim, generator=g)
    mask = torch.rand(rows, in_dim, generator=g) < keep
    out, used = built(x, mask, wt)
    want, want_used = sparse.embedding_bag_matmul(x, mask, wt)
    assert torch.equal(out, want)
    assert torch.equal(used, mask.sum(1))
    assert torch.equal(used, want_used)


def test_a_one_row_bag_runs_the_fused_op_once_built(built: fused.Op, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def spy(x: torch.Tensor, mask: torch.Tensor, wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(x.shape[0])
        return built(x, mask, wt)

    monkeypatch.setattr(fused, "_op", [spy])
    x = torch.randn(1, 576)
    sparse.bag_matmul(x, x.abs() > 0.5, torch.randn(576, 64))
    assert calls == [1]


def test_an_op_with_other_bits_is_refused(built: fused.Op) -> None:
    def off_by_rounding(x: torch.Tensor, mask: torch.Tensor, wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, used = built(x, mask, wt)
        return out + 1e-7 * out.abs().max(), used

    assert sparse._fused_agrees(built)
    assert not sparse._fused_agrees(off_by_rounding)


_HOLD_FLOCK = """
import fcntl, sys
handle = open(sys.argv[1], "a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def test_a_build_lock_left_by_a_killed_builder_is_removed_once_its_flock_is_free(tmp_path: Path) -> None:
    baton = tmp_path / "lock"
    baton.touch()  # fresh: torch itself would wait on it forever
    with fused.sole_builder(tmp_path):
        assert not baton.exists()


def test_a_live_builders_lock_is_waited_for_and_taken_over_when_it_is_killed(tmp_path: Path) -> None:
    baton = tmp_path / "lock"
    baton.touch()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_FLOCK, str(tmp_path / fused.BUILD_FLOCK)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        waiting, entered = threading.Event(), threading.Event()

        class Seen(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "waiting for it" in record.getMessage():
                    waiting.set()

        def build() -> None:
            with fused.sole_builder(tmp_path):
                entered.set()

        seen = Seen()
        fused.log.addHandler(seen)
        fused.log.setLevel(logging.INFO)
        try:
            worker = threading.Thread(target=build, daemon=True)
            worker.start()
            assert waiting.wait(60), "the second builder did not find the first one's flock held"
            assert baton.exists()  # a live builder's baton is left alone
            assert not entered.is_set()
            holder.kill()  # killed mid-build: the kernel frees its flock
            wait_until(entered.is_set, timeout_s=60, what="the build to go on once the first builder died")
            worker.join(60)
        finally:
            fused.log.removeHandler(seen)
        assert not baton.exists()
    finally:
        holder.kill()
        holder.wait()
