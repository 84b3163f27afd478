"""The load driver: sends an offered load open-loop to the ready replicas and counts every outcome.

Requests leave at their scheduled times whatever the replies (open loop, as users do), each a
``POST /v1/completions`` with a prompt of about the scheduled length and ``max_tokens``. Every request
ends in exactly one outcome: ``ok`` (200), ``rejected`` (429: the runtime shed it) or ``failed``
(anything else, with the reason kept), so ``total == ok + rejected + failed`` always holds. An
``ok`` record keeps the routing temperature the replica served it at (``usage.routing_temperature``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass, field

import aiohttp

from thermostat_stack.endpoints import EndpointPool
from thermostat_stack.scenarios import Arrival, OfferedLoad

# Common one-token English words: a prompt of N of them is about N tokens for SmolLM2's tokenizer.
_WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "to", "see", "what", "was", "new")
REQUEST_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class RequestRecord:
    """What happened to one request: when it left, how long it took, how it ended."""

    sent_s: float
    latency_s: float
    outcome: str  # ok | rejected | failed
    pod: str | None
    generated_tokens: int = 0
    reason: str = ""
    routing_temperature: float | None = None  # usage.routing_temperature of an ok reply


@dataclass
class LoadStats:
    """Counts of outcomes so far and the record of every finished request."""

    sent: int = 0
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    failure_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    records: list[RequestRecord] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.ok + self.rejected + self.failed

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)
        if record.outcome == "ok":
            self.ok += 1
        elif record.outcome == "rejected":
            self.rejected += 1
        else:
            self.failed += 1
            self.failure_reasons[record.reason] += 1


def prompt_text(tokens: int) -> str:
    """A prompt of about ``tokens`` tokens."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(max(tokens - 1, 1)))


class LoadDriver:
    """Sends an :class:`OfferedLoad` to an :class:`EndpointPool`; ``stats`` holds the outcomes."""

    def __init__(self, pool: EndpointPool, *, model: str | None = None) -> None:
        self.pool = pool
        self.model = model
        self.stats = LoadStats()
        self.started_at: float | None = None  # monotonic time of the first scheduled arrival
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Send nothing more; :meth:`run` then waits for the requests in flight and returns."""
        self._stopping.set()

    async def run(self, load: OfferedLoad) -> None:
        """Send every arrival at its time, then wait for the last replies."""
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.started_at = time.monotonic()
            for arrival in load.arrivals:
                if await self._stopped_within(self.started_at + arrival.time_s - time.monotonic()):
                    break
                task = asyncio.create_task(self._send(session, arrival))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                await self._stopped_within(self.started_at + load.duration_s - time.monotonic())
            await self.drain()

    async def _stopped_within(self, delay_s: float) -> bool:
        """Sleep ``delay_s`` unless :meth:`stop` comes first; True when stopped."""
        if delay_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay_s)
        return self._stopping.is_set()

    async def drain(self) -> None:
        """Wait for the requests still in flight (each ends by its own timeout at worst)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at if self.started_at is not None else 0.0

    async def _send(self, session: aiohttp.ClientSession, arrival: Arrival) -> None:
        self.stats.sent += 1
        sent = self.elapsed_s()
        endpoint = self.pool.pick()
        if endpoint is None:
            self.stats.add(RequestRecord(sent, 0.0, "failed", None, reason="no ready replica"))
            return
        body: dict[str, object] = {"prompt": prompt_text(arrival.prompt_tokens), "max_tokens": arrival.max_tokens}
        if self.model:
            body["model"] = self.model
        start = time.monotonic()
        endpoint.acquire()
        try:
            async with session.post(f"{endpoint.url}/v1/completions", json=body) as response:
                payload = await response.json(content_type=None) if response.status == 200 else await response.text()
                record = self._record(sent, time.monotonic() - start, endpoint.pod, response.status, payload)
        except (aiohttp.ClientError, TimeoutError) as error:
            record = RequestRecord(sent, time.monotonic() - start, "failed", endpoint.pod, reason=type(error).__name__)
        finally:
            endpoint.release()
        self.stats.add(record)

    @staticmethod
    def _record(sent: float, latency: float, pod: str, status: int, payload: object) -> RequestRecord:
        if status == 200:
            usage = payload.get("usage", {}) if isinstance(payload, dict) else {}
            served = usage.get("routing_temperature")
            temperature = float(served) if isinstance(served, int | float) else None
            return RequestRecord(sent, latency, "ok", pod, int(usage.get("completion_tokens", 0)),
                                 routing_temperature=temperature)  # fmt: skip
        if status == 429:
            return RequestRecord(sent, latency, "rejected", pod, reason="429")
        return RequestRecord(sent, latency, "failed", pod, reason=f"HTTP {status}: {str(payload)[:120]}")
