"""The fused decode-row kernel: gate mask in, input-sparse product out, one C++ pass (CPU only).

``csrc/masked_rows.cpp`` computes, per row, the sum of ``x[r, i] * wt[i]`` over the row's kept
channels in increasing order — the arithmetic of ``sparse.bag_matmul``'s ``embedding_bag`` — without
its ``nonzero``, gather copy and op dispatch, and it streams each kept row of ``wt`` once. It is built
with ``torch.utils.cpp_extension`` (needs a C++ compiler and ninja; cached under torch's extensions
directory, ~1-2 min to build on the 2-core box) in a daemon thread started by ``start_build``, so a
server never waits for it: ``sparse.bag_matmul`` uses the bag until the op is ready and checked, and
the fused op after. Switching mid-request is invisible because the op is used only if a self-check
finds it **bit-identical** to the bag (``check``, given by ``sparse``); otherwise, with no compiler,
on CUDA, or with ``THERMOSTAT_FUSED_KERNEL=0``, the bag stays (logged once). A build lock older
than ``STALE_LOCK_S`` (left by a process killed mid-build) is removed first.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SOURCE = Path(__file__).parent / "csrc" / "masked_rows.cpp"
ENV = "THERMOSTAT_FUSED_KERNEL"
NAME = "thermostat_masked_rows"
# torch waits forever on a build lock a killed process left behind (a short CLI run may exit mid-build);
# a build takes ~2 minutes here, so a lock this old is stale.
STALE_LOCK_S = 900
Op = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

_op: list[Op] = []  # the checked op, once built
_ready = threading.Event()
_lock = threading.Lock()
_started: list[bool] = []


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def op() -> Op | None:
    """The checked fused op, or None (not built yet, unavailable, or disabled)."""
    return _op[0] if _op else None


def start_build(check: Callable[[Op], bool]) -> None:
    """Build (or load the cached build) in a daemon thread, once per process; ``check`` vouches for it."""
    if not enabled():
        _ready.set()
        return
    with _lock:
        if _started:
            return
        _started.append(True)
    threading.Thread(target=_build, args=(check,), name="fused-kernel-build", daemon=True).start()


def wait_ready(timeout_s: float) -> bool:
    """Wait until the build finished (built or given up); False if it is still running at the deadline."""
    return _ready.wait(timeout_s)


def _build(check: Callable[[Op], bool]) -> None:
    try:
        from torch.utils.cpp_extension import get_default_build_root, load

        directory = Path(get_default_build_root()) / NAME
        directory.mkdir(parents=True, exist_ok=True)
        _drop_stale_lock(directory / "lock")
        module = load(name=NAME, sources=[str(SOURCE)], extra_cflags=["-O3", "-march=native"],
                      build_directory=str(directory), verbose=False)  # fmt: skip
        candidate: Op = module.masked_rows
        if check(candidate):
            _op.append(candidate)
            log.info("fused decode-row kernel ready (bit-identical to embedding_bag)")
        else:
            log.warning("fused decode-row kernel differs from embedding_bag in its bits here; keeping the bag")
    except Exception as error:
        log.warning("fused decode-row kernel unavailable (%s); using embedding_bag", str(error)[:300])
    finally:
        _ready.set()


def _drop_stale_lock(lock: Path) -> None:
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return
    if age > STALE_LOCK_S:
        log.warning("removing the fused kernel's stale build lock %s (%.0f s old)", lock, age)
        lock.unlink(missing_ok=True)
