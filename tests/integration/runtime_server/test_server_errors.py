"""Bad requests get 400 with a message naming what is wrong; a full queue gets 429 + Retry-After and
the server stays healthy; a flood of requests keeps memory bounded."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]


def post(url: str, body: Any, *, raw: bytes | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


BAD_REQUESTS = [
    ("/v1/completions", {"prompt": "hi", "max_tokens": "5"}, "max_tokens"),
    ("/v1/completions", {"prompt": "hi", "max_tokens": 100000}, "exceeds this server's limit"),
    ("/v1/completions", {"prompt": "word " * 3000, "max_tokens": 4}, "prompt too long"),
    ("/v1/completions", {"prompt": "hi", "model": "gpt-4"}, "unknown model 'gpt-4'"),
    ("/v1/completions", {"prompt": "hi", "temperature": -1}, "temperature"),
    ("/v1/completions", {"prompt": "hi", "n": 2}, "'n'"),
    ("/v1/completions", {"max_tokens": 4}, "prompt"),
    ("/v1/completions", {"prompt": ""}, "empty"),
    ("/v1/completions", {"prompt": [99999999]}, "token ids"),
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, "role"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, "content"),
    ("/v1/chat/completions", ["not", "an", "object"], "JSON object"),
]


def test_each_bad_request_gets_400_with_a_message(start_server, scrape) -> None:  # type: ignore[no-untyped-def]
    running = start_server()
    for path, body, phrase in BAD_REQUESTS:
        status, reply, _ = post(running.url + path, body)
        assert status == 400, (body, reply)
        assert phrase in reply["error"]["message"], (body, reply)
    status, reply, _ = post(running.url + "/v1/completions", None, raw=b"{not json")
    assert status == 400
    assert "not valid JSON" in reply["error"]["message"]
    samples = scrape(running.url)
    assert samples[("thermostat_requests_total", (("code", "400"),))] == len(BAD_REQUESTS) + 1


def _fire(url: str, bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
    results: list[Any] = [None] * len(bodies)

    def one(i: int) -> None:
        results[i] = post(url, bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_overload_gets_429_with_retry_after_and_the_server_stays_healthy(start_server, scrape) -> None:  # type: ignore[no-untyped-def]
    running = start_server(max_batch=1, max_queue=1)
    body = {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}
    results = _fire(running.url + "/v1/completions", [body] * 6)
    codes = sorted(status for status, _, _ in results)
    assert set(codes) == {200, 429}
    assert codes.count(200) >= 2
    for status, reply, headers in results:
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
            assert "queue full" in reply["error"]["message"]
    with urllib.request.urlopen(running.url + "/healthz", timeout=30) as health:
        assert health.status == 200
    assert post(running.url + "/v1/completions", {"prompt": "Hi", "max_tokens": 2})[0] == 200
    samples = scrape(running.url)
    assert samples[("thermostat_requests_total", (("code", "429"),))] == codes.count(429)


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_flood_is_shed_and_memory_stays_bounded(start_server) -> None:  # type: ignore[no-untyped-def]
    running = start_server(max_batch=2, max_queue=4)
    scheduler = running.server.scheduler
    most_pending = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            most_pending[0] = max(most_pending[0], scheduler.pending())
            stop.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    before = _rss_bytes()
    body = {"prompt": "The weather today is " * 50, "max_tokens": 4}
    results = [r for _ in range(3) for r in _fire(running.url + "/v1/completions", [body] * 60)]
    stop.set()
    watcher.join()
    codes = [status for status, _, _ in results]
    assert set(codes) <= {200, 429}
    assert 429 in codes
    assert 200 in codes
    assert most_pending[0] <= 2 + 4
    # 180 requests admitted at most 6 at a time: memory grows by caches of 6 sequences, not of 180.
    assert _rss_bytes() - before < 300 * 2**20
