"""Bad input, fuzzed (issue 17 item 4): the runtime's HTTP layer against schemathesis and a flood.

The server is the real ``RuntimeServer`` on a loopback port; its engine is the tiny torch engine of
``tiny_engine`` (an 8-token vocabulary), because what is fuzzed is the HTTP layer's parsing and
validation, not the model — a valid request still runs the real scheduler and streaming to the end.
Schemathesis generates from the document the server publishes at ``/openapi.json`` (so the document is
tested too): valid and invalid bodies for every operation; none may get a 5xx or log a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from thermostat_runtime import openapi
from thermostat_runtime.routing_config import FileSource, RoutingSetting
from thermostat_runtime.server import RuntimeServer, ServerSettings
from tiny_engine import TinyEngine

pytestmark = pytest.mark.slow


@dataclass
class Served:
    url: str
    loop: asyncio.AbstractEventLoop
    runner: Any


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A server with small limits (so valid requests stay milliseconds long) in its own thread."""
    from aiohttp import web

    file = tmp_path / "routing-temperature"
    file.write_text("1.0\n")
    setting = RoutingSetting()
    server = RuntimeServer(TinyEngine(), ServerSettings(max_tokens_limit=8, max_prompt_tokens=32, power_interval_s=0.2),
                           setting, [FileSource(file, setting, interval_s=0.05)])  # fmt: skip
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Served:
        runner = web.AppRunner(server.make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return Served(f"http://127.0.0.1:{runner.addresses[0][1]}", loop, runner)

    running = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    yield running
    asyncio.run_coroutine_threadsafe(running.runner.cleanup(), loop).result(timeout=60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_the_openapi_document_is_served_from_the_validating_models(served: Served) -> None:
    published = requests.get(served.url + "/openapi.json", timeout=10).json()
    assert published == openapi.document()
    body = published["components"]["schemas"]["CompletionBody"]
    assert "prompt" in body["required"]
    assert body["properties"]["temperature"]["maximum"] == 2.0
    labels = {op.ok().label for op in schemathesis.openapi.from_dict(published).get_all_operations()}
    assert {"POST /v1/completions", "POST /v1/chat/completions", "GET /metrics", "GET /readyz"} <= labels


def _fuzz(operation: Any, mode: schemathesis.GenerationMode, url: str, seen: dict[int, int]) -> None:
    """Run one operation's generated cases; every answer is counted by status in ``seen``."""
    session = requests.Session()
    examples = 120 if operation.method.upper() == "POST" else 5

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, session=session, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        shown = f"{case.as_curl_command()} -> {response.status_code} {response.text[:300]}"
        assert response.status_code < 500, shown
        assert "Traceback" not in response.text, shown

    call()


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_fuzzed_requests_to_every_endpoint_get_no_5xx_and_no_traceback(
    served: Served, mode: schemathesis.GenerationMode, caplog: pytest.LogCaptureFixture
) -> None:
    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    figures: dict[str, dict[int, int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode is schemathesis.GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # a GET without parameters has nothing to make invalid
        _fuzz(operation, mode, served.url, figures.setdefault(operation.label, {}))
    print(f"fuzz ({mode.value}): status counts per endpoint {figures}")
    assert not _tracebacks(caplog), _tracebacks(caplog)


def _rss_bytes() -> int:
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_MALFORMED: list[tuple[str, bytes]] = [
    ("application/json", b"x" * (5 * 1024 * 1024)),  # over the 4 MiB limit
    ("application/json", b'{"prompt": "' + b"a" * (4 * 1024 * 1024 - 64) + b'"}'),  # just under it
    ("application/json", b"[" * 200_000),  # nesting deeper than the JSON parser's recursion
    ("application/json", b'{"prompt": [' + b"1," * 500_000 + b"1]}"),  # a huge id list
    ("application/json", b"\xff\xfe\x00garbage"),  # not UTF-8
    ("application/json; charset=no-such-codec", b'{"prompt": "hi"}'),
    ("text/plain", b"prompt=hi"),
    ("application/json", b'{"prompt": "hi", "max_tokens": 1e400}'),
    ("application/json", b'{"prompt": "hi", "seed": 123456789012345678901234567890}'),
    ("application/json", b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}'),
    ("application/json", b""),
]


def test_a_flood_of_oversized_and_malformed_bodies_is_refused_with_bounded_memory(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    session = requests.Session()
    codes: dict[int, int] = {}

    def flood(rounds: int) -> None:
        for _ in range(rounds):
            for content_type, body in _MALFORMED:
                for path in ("/v1/completions", "/v1/chat/completions"):
                    response = session.post(served.url + path, data=body, headers={"Content-Type": content_type},
                                            timeout=60)  # fmt: skip
                    codes[response.status_code] = codes.get(response.status_code, 0) + 1
                    assert response.status_code < 500, f"{content_type} {body[:40]!r} -> {response.text[:300]}"

    flood(2)  # warm-up: allocator arenas and caches reach their working size
    before = _rss_bytes()
    flood(10)
    grown = _rss_bytes() - before
    sent = sum(codes.values())
    print(f"flood: {sent} bodies, status counts {codes}, RSS grew {grown / 2**20:.1f} MiB over the last 10 rounds")
    assert grown < 64 * 2**20, f"memory grew {grown / 2**20:.0f} MiB under the flood"
    assert not _tracebacks(caplog), _tracebacks(caplog)
