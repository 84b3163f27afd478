"""Capacity of one runtime replica at T = 1 and at T_min, measured on this machine before the run.

One replica is started alone, with the very command line the node agent gives the stack's replicas
(the RoutedModel's pod template rewritten for this machine: one torch thread, batch 1, the same shadow
fraction), except that its routing temperature comes from a file. T_min is the one the runtime
publishes (``GET /v1/models``, the bound it clamps to). Requests of the run's prompt length and
exactly ``max_tokens`` generated tokens (``ignore_eos``, greedy, fixed seed) go one after another in
short rounds that alternate between T = 1 and T_min on that one process (:mod:`interleave`); before
each round the file is rewritten and the runtime's gauge confirms the new temperature. Capacity at
T = 1 is pooled over its rounds; the gain of T_min is the median of paired round ratios, reported
with its spread. The served profile is kept: the operator plans with the profile the runtime serves,
as it would in a cluster. The built-in burst is sized between the two capacities, and the trace's
default rate scale is taken from the first.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from thermostat_stack.interleave import Round, Side, paired_throughput, round_order
from thermostat_stack.loaddriver import prompt_text
from thermostat_stack.podspec import local_runtime_args, runtime_env
from thermostat_stack.ports import free_port
from thermostat_stack.processes import ProcessTable
from thermostat_stack.scenarios import RequestShape

log = logging.getLogger(__name__)
TEMPERATURE_GAUGE = "thermostat_routing_temperature"


def gauge_value(exposition: str, name: str) -> float | None:
    """The value of an unlabelled gauge in a Prometheus text exposition; None when absent."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


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
    ratios: tuple[float, ...] = ()  # paired T_min / T = 1 throughput ratios, one per pair of rounds

    @property
    def gain(self) -> float:
        """T_min's capacity over T = 1's: the median paired ratio when measured so."""
        return self.tmin_rps / self.exact_rps if self.exact_rps > 0 else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        """The smallest and largest paired ratio (the gain itself when there are none)."""
        return (min(self.ratios), max(self.ratios)) if self.ratios else (self.gain, self.gain)


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


async def published_t_min(session: aiohttp.ClientSession, url: str) -> float:
    """The T_min the runtime clamps to, as it publishes it in ``GET /v1/models``."""
    async with session.get(f"{url}/v1/models") as response:
        body = await response.json()
    return float(body["data"][0]["t_min"])


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


async def set_temperature(
    session: aiohttp.ClientSession, url: str, temperature_file: Path, value: float, timeout_s: float = 15
) -> None:
    """Write ``value`` to the routing file and wait until the runtime's gauge shows it applied."""
    temperature_file.write_text(f"{value!r}\n")
    deadline = time.monotonic() + timeout_s
    applied = None
    while time.monotonic() < deadline:
        async with session.get(f"{url}/metrics") as response:
            applied = gauge_value(await response.text(), TEMPERATURE_GAUGE)
        if applied is not None and abs(applied - value) < 1e-9:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"routing temperature {applied} applied {timeout_s:.0f}s after the file said {value}")


async def run_round(
    session: aiohttp.ClientSession,
    url: str,
    shape: RequestShape,
    *,
    side: Side,
    requests: int,
    clock: Callable[[], float] = time.monotonic,
) -> Round:
    """``requests`` completions one after another, each exactly ``shape.max_tokens`` tokens long."""
    body = {
        "prompt": prompt_text(shape.prompt_tokens),
        "max_tokens": shape.max_tokens,
        "temperature": 0.0,
        "seed": 0,
        "ignore_eos": True,  # both temperatures generate the same number of tokens: the same work
    }
    tokens = 0
    start = clock()
    for _ in range(requests):
        async with session.post(f"{url}/v1/completions", json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"capacity request answered {response.status}: {await response.text()}")
            reply = await response.json()
        tokens += int(reply.get("usage", {}).get("completion_tokens", 0))
    return Round(side, requests, tokens, clock() - start)


async def measure_on(
    session: aiohttp.ClientSession,
    url: str,
    temperature_file: Path,
    shape: RequestShape,
    *,
    pairs: int,
    requests_per_round: int,
    clock: Callable[[], float] = time.monotonic,
) -> Capacity:
    """Alternating rounds on a ready runtime at ``url`` (see the module docstring); ``clock`` times the rounds."""
    profile = await served_profile(session, url)
    t_min = await published_t_min(session, url)
    if profile is not None and abs(float(profile["t_min"]) - t_min) > 1e-9:
        log.warning("the served profile says T_min %s, the runtime clamps to %s: measuring at the latter",
                    profile["t_min"], t_min)  # fmt: skip
    temperatures: dict[Side, float] = {"exact": 1.0, "tmin": t_min}
    order: list[Side] = round_order(pairs) if t_min < 1.0 else ["exact"] * pairs
    for side in dict.fromkeys(order):  # one warm-up request at each temperature, not counted
        await set_temperature(session, url, temperature_file, temperatures[side])
        await run_round(session, url, shape, side=side, requests=1)
    rounds = []
    for side in order:
        await set_temperature(session, url, temperature_file, temperatures[side])
        rounds.append(await run_round(session, url, shape, side=side, requests=requests_per_round, clock=clock))
    paired = paired_throughput(rounds)
    return Capacity(
        paired.exact_rps,
        paired.exact_rps * paired.gain,
        t_min,
        shape,
        pairs * requests_per_round,
        profile,
        paired.exact_tokens_per_s,
        paired.exact_tokens_per_s * paired.gain,
        paired.ratios,
    )


def capacity_argv(serve_args: list[str], port: int, temperature_file: Path) -> list[str]:
    """The replicas' command line (``serve_args``, as the pod template gives them) for the capacity runtime."""
    args = local_runtime_args(serve_args, port)
    return [sys.executable, "-m", "thermostat_runtime", *args, "--routing-temperature-file", str(temperature_file)]


async def measure_capacity(
    processes: ProcessTable,
    *,
    shape: RequestShape,
    requests_each: int = 8,
    requests_per_round: int = 1,
    serve_args: list[str] | None = None,
    ready_timeout_s: float = 300,
) -> Capacity:
    """Start one replica, measure at T = 1 and T_min in alternating rounds, stop it.

    ``requests_each`` requests are sent at each temperature, in rounds of ``requests_per_round``;
    ``serve_args`` is the replicas' ``serve ...`` command line (the template's, before the local
    rewrite), plain ``serve`` when None.
    """
    pairs = max(1, -(-requests_each // requests_per_round))
    with tempfile.TemporaryDirectory(prefix="thermostat-capacity-") as scratch:
        temperature_file = Path(scratch) / "routing_temperature"
        temperature_file.write_text("1.0\n")
        port = free_port()
        argv = capacity_argv(serve_args or ["serve"], port, temperature_file)
        child = processes.start("capacity-runtime", argv, env=runtime_env({}))
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
                await _wait_ready(session, url, ready_timeout_s, child.alive)
                return await measure_on(
                    session, url, temperature_file, shape, pairs=pairs, requests_per_round=requests_per_round
                )
        except Exception as error:
            log_tail = child.log_tail()
            raise RuntimeError(f"capacity measurement failed: {error}\n--- runtime log ---\n{log_tail}") from error
        finally:
            await child.stop_async(grace_s=10)
