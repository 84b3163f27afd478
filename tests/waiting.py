"""Waiting on a condition with a deadline, the one way the tests synchronise with processes they start."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
POLL_S = 0.25  # how often the condition is checked; never a stand-in for the condition itself


def wait_until(
    check: Callable[[], T | None], *, timeout_s: float, what: str, process: subprocess.Popen[Any] | None = None
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (or ``process``, if it died)."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited ({process.returncode}) while waiting for {what}")
        last = check()
        if last:
            return last
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")
