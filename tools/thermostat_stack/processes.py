"""Child processes the stack starts, each in its own process group, so that ending them is certain.

Every process (runtime replicas, the operator, the API server) is started with
``start_new_session=True``: SIGTERM and SIGKILL then go to its whole group, so grandchildren (a
shell, a worker) cannot outlive it. A :class:`ProcessTable` keeps every process the stack started and
ends what is left at shutdown, whatever path the run took (``--duration``, Ctrl-C, an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ChildProcess:
    """One started process, its log file and its process group."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the process group (no error when it is already gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def stop(self, grace_s: float) -> int | None:
        """SIGTERM the group, wait up to ``grace_s``, then SIGKILL; returns the exit status."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace_s)
        # Whatever is left of the group (the leader may have exited first) is killed.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        return self.popen.returncode

    async def stop_async(self, grace_s: float) -> int | None:
        """:meth:`stop` without blocking the event loop."""
        return await asyncio.to_thread(self.stop, grace_s)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


@dataclass
class ProcessTable:
    """Every process the stack started; :meth:`stop_all` ends those still running."""

    log_dir: Path
    processes: list[ChildProcess] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> ChildProcess:
        """Start ``argv`` in a new session, its stdout and stderr going to ``<log_dir>/<name>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        child = ChildProcess(name, list(argv), log_path, popen)
        self.processes.append(child)
        return child

    def running(self) -> list[ChildProcess]:
        return [child for child in self.processes if child.alive()]

    def stop_all(self, grace_s: float = 10.0) -> None:
        """SIGTERM every running group at once, wait for them together, SIGKILL what remains."""
        for child in self.running():
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(timeout=max(deadline - time.monotonic(), 0.0))
        for child in self.processes:
            child.stop(grace_s=0.0)
