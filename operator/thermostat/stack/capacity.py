"""Capacity of one runtime replica at T = 1 and at T_min, measured on this machine before the run.

One replica is started alone (one torch thread, as in the stack) with its routing temperature read
from a file, and fed requests of the run's shape one after another (batch 1, where skipping saves
wall time): capacity is requests completed per second of wall time. The file is then rewritten to the
runtime's published T_min (``GET /v1/routing/profile``), the runtime's gauge confirms the change (it
clamps to what its routers allow), and the measurement repeats. The served profile is kept: the
operator plans with the profile the runtime serves, as it would in a cluster. The built-in burst is
sized between the two figures, and the trace's default rate scale is taken from the first.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from thermostat.stack.loaddriver import prompt_text
from thermostat.stack.podspec import local_frame_args, runtime_env
from thermostat.stack.ports import free_port
from thermostat.stack.processes import ProcessTable
from thermostat.stack.scenarios import RequestShape

log = logging.getLogger(__name__)
LOCAL_FRAME_FLAGS = local_frame_args([])
TEMPERATURE_GAUGE = re.compile(r"^thermostat_routing_temperature(?:\{[^}]*\})?\s+([0-9.eE+-]+)", re.MULTILINE)


@dataclass(frozen=True)
class Capacity:
    """Requests per second one replica completes at T = 1 and at T_min, for one request shape."""

    exact_rps: float
    tmin_rps: float
    t_min: float
    shape: RequestShape
    requests_each: int
    profile: dict[str, Any] | None = None  # the routing profile the runtime serves, if any
    exact_tokens_per_s: float | None = None  # generated tokens per second of wall time, at T = 1
    tmin_tokens_per_s: float | None = None  # the same at T_min

    @property
    def gain(self) -> float:
        return self.tmin_rps / self.exact_rps if self.exact_rps > 0 else float("nan")


async def _wait_ready(session: aiohttp.ClientSession, url: str, timeout_s: float, process_alive: object) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(process_alive) and not process_alive():
            raise RuntimeError("the runtime exited during the capacity measurement")
        try:
            async with session.get(f"{url}/readyz") as response:
                if response.status == 200:
                    return
        except (TimeoutError, aiohttp.ClientError):
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the runtime at {url} was not ready after {timeout_s:.0f}s")


async def _applied_temperature(
    session: aiohttp.ClientSession, url: str, previous: float, timeout_s: float = 15
) -> float:
    """The routing temperature the runtime applies once it has read the new file (its gauge).

    The runtime clamps into [T_min, 1] on its own, so the value it applies is read back rather than assumed.
    """
    deadline = time.monotonic() + timeout_s
    value = previous
    while time.monotonic() < deadline:
        async with session.get(f"{url}/metrics") as response:
            match = TEMPERATURE_GAUGE.search(await response.text())
        if match:
            value = float(match.group(1))
            if abs(value - previous) > 1e-9:
                return value
        await asyncio.sleep(0.25)
    log.warning("the runtime kept routing temperature %s after the file changed (clamped at its T_min)", value)
    return value


async def served_profile(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    """The routing profile the runtime serves (``GET /v1/routing/profile``); None when it serves none."""
    async with session.get(f"{url}/v1/routing/profile") as response:
        if response.status == 404:
            log.warning("the runtime serves no routing profile (no routers): T_min = 1, routing cannot save compute")
            return None
        if response.status != 200:
            raise RuntimeError(f"GET /v1/routing/profile answered {response.status}: {await response.text()}")
        profile: dict[str, Any] = await response.json()
        return profile


@dataclass(frozen=True)
class Throughput:
    """Completions one after another: requests and generated tokens per second of wall time."""

    rps: float
    tokens_per_s: float


async def _throughput(session: aiohttp.ClientSession, url: str, shape: RequestShape, requests: int) -> Throughput:
    """Requests one after another, after one warm-up request."""
    body = {"prompt": prompt_text(shape.prompt_tokens), "max_tokens": shape.max_tokens, "seed": 0}
    tokens = 0
    for index in range(requests + 1):
        if index == 1:
            start, tokens = time.monotonic(), 0
        async with session.post(f"{url}/v1/completions", json={**body, "seed": index}) as response:
            if response.status != 200:
                raise RuntimeError(f"capacity request answered {response.status}: {await response.text()}")
            reply = await response.json()
        tokens += int(reply.get("usage", {}).get("completion_tokens", 0))
    elapsed = time.monotonic() - start
    return Throughput(requests / elapsed, tokens / elapsed)


async def _measure(
    session: aiohttp.ClientSession, url: str, temperature_file: Path, shape: RequestShape, requests_each: int
) -> Capacity:
    """Both measurements on a ready runtime; T_min is what the runtime applies after the file names it."""
    profile = await served_profile(session, url)
    t_min = float(profile["t_min"]) if profile else 1.0
    exact = await _throughput(session, url, shape, requests_each)
    tmin = exact
    if t_min < 1.0:
        temperature_file.write_text(f"{t_min}\n")
        t_min = await _applied_temperature(session, url, previous=1.0)
        # Clamped back to exact (a runtime without routers): nothing else to measure.
        if t_min < 1.0:
            tmin = await _throughput(session, url, shape, requests_each)
    return Capacity(exact.rps, tmin.rps, t_min, shape, requests_each, profile, exact.tokens_per_s, tmin.tokens_per_s)


async def measure_capacity(
    processes: ProcessTable,
    *,
    shape: RequestShape,
    requests_each: int = 8,
    model_args: list[str] | None = None,
    ready_timeout_s: float = 300,
) -> Capacity:
    """Start one replica, measure at T = 1 and T_min, stop it (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="thermostat-capacity-") as scratch:
        temperature_file = Path(scratch) / "routing_temperature"
        temperature_file.write_text("1.0\n")
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "thermostat_runtime",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--routing-temperature-file",
            str(temperature_file),
            *LOCAL_FRAME_FLAGS,
            *(model_args or []),
        ]
        child = processes.start("capacity-runtime", argv, env=runtime_env({}))
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
                await _wait_ready(session, url, ready_timeout_s, child.alive)
                return await _measure(session, url, temperature_file, shape, requests_each)
        except Exception as error:
            log_tail = child.log_tail()
            raise RuntimeError(f"capacity measurement failed: {error}\n--- runtime log ---\n{log_tail}") from error
        finally:
            await child.stop_async(grace_s=10)
