"""The fused decode-row kernel: gate mask in, input-sparse product out, one C++ pass (CPU only).

``csrc/masked_rows.cpp`` computes, per row, the sum of ``x[r, i] * wt[i]`` over the row's kept
channels in increasing order — the arithmetic of ``sparse.bag_matmul``'s ``embedding_bag`` — without
its ``nonzero``, gather copy and op dispatch, and it streams each kept row of ``wt`` once. It is built
with ``torch.utils.cpp_extension`` (needs a C++ compiler and ninja; cached under torch's extensions
directory, ~1-2 min to build on the 2-core box) in a daemon thread started by ``start_build``, so a
server never waits for it: ``sparse.bag_matmul`` uses the bag until the op is ready and checked, and
the fused op after. Switching mid-request is invisible because the op is used only if a self-check
finds it **bit-identical** to the bag (``check``, given by ``sparse``); otherwise, with no compiler,
on CUDA, or with ``THERMOSTAT_FUSED_KERNEL=0``, the bag stays (logged once).

torch marks a build in progress with a ``lock`` file that its builder deletes when done; a builder
killed mid-build (a SIGKILLed replica, a CLI run that exits first) leaves it, and every later build
then waits on it forever. So each builder first takes ``BUILD_FLOCK``, an ``flock`` the kernel
releases when its holder dies: whoever holds it is the only builder alive, and any ``lock`` it finds
is a dead builder's, removed at once. ``python -m thermostat_runtime.fused`` builds in the foreground
(``scripts/install.sh`` runs it, so a first model load finds the op cached).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SOURCE = Path(__file__).parent / "csrc" / "masked_rows.cpp"
ENV = "THERMOSTAT_FUSED_KERNEL"
NAME = "thermostat_masked_rows"
BUILD_FLOCK = "thermostat.flock"
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


def wait_ready(timeout_s: float | None) -> bool:
    """Wait until the build finished (built or given up); False if it is still running at the deadline."""
    return _ready.wait(timeout_s)


def _build(check: Callable[[Op], bool]) -> None:
    try:
        from torch.utils.cpp_extension import get_default_build_root, load

        directory = Path(get_default_build_root()) / NAME
        directory.mkdir(parents=True, exist_ok=True)
        with sole_builder(directory):
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


@contextlib.contextmanager
def sole_builder(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s build flock (waiting for a live builder to finish); drop a dead builder's baton."""
    with open(directory / BUILD_FLOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is building the fused kernel in %s; waiting for it", directory)
            fcntl.flock(handle, fcntl.LOCK_EX)  # the kernel frees it when that builder ends, however it ends
        baton = directory / "lock"
        if baton.exists():
            log.warning("removing the fused kernel's build lock %s: the process that took it is gone", baton)
            baton.unlink(missing_ok=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main() -> int:
    """Build (or load the cached build of) the fused op in the foreground; say whether it is used."""
    # Run as ``-m``, this file is ``__main__``: the op and its event live in the imported module.
    from thermostat_runtime import fused, sparse  # noqa: PLW0406

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sparse.start_fused_build()
    fused.wait_ready(None)
    print("fused decode-row kernel: " + ("ready" if fused.op() is not None else "unavailable; embedding_bag runs"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
