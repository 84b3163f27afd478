"""Step-level continuous batching: one worker thread runs the engine for every admitted request.

Requests enter a bounded waiting queue (``submit`` raises ``QueueFullError`` when it holds
``max_queue``: the server answers 429). Before each forward step the worker moves waiting requests into
the batch (at most ``max_batch`` sequences), then runs one ``Engine.forward`` over all of them: a new
request's row is its whole prompt (prefill), the others' one token each (decode). Finished or cancelled
sequences leave the batch at once, freeing their KV cache; so memory is bounded by
``max_batch × (max prompt + max tokens)`` cache rows plus ``max_queue`` waiting prompts.

The routing temperature is read before every step and applied to every sequence from that step on
(DESIGN §3: "applied to the next forward pass"); a change in the middle of a request is recorded in its
``routing_changes`` (token index, T) so that ``replay`` can reproduce it. Events (tokens, the finish)
reach the request's asyncio queue through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from thermostat_runtime.sampling import new_generator, sample_token
from thermostat_runtime.shadow import ShadowTally, compare

if TYPE_CHECKING:
    from thermostat_runtime.engine import Engine
    from thermostat_runtime.metrics import RuntimeMetrics
    from thermostat_runtime.model import SequenceState

log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """The waiting queue is full; ``retry_after_s`` estimates when a slot frees up."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"queue full, retry after {retry_after_s}s")
        self.retry_after_s = retry_after_s


@dataclass
class GenerationRequest:
    """What the worker needs to generate for one request (already validated and tokenized)."""

    request_id: str
    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    shadow: bool = False
    ignore_eos: bool = False  # generate max_tokens whatever the model says (benchmarks; vLLM's name)
    arrival_s: float = field(default_factory=time.monotonic)


@dataclass
class GenerationResult:
    """A finished request's outcome: usage, routing, compute and shadow tallies."""

    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int
    routing_temperature: float
    routing_seed: int
    executed_fraction: float
    flops_executed: float
    flops_full: float
    routing_changes: list[tuple[int, float]]
    shadow: ShadowTally | None
    gate_hashes: list[str] = field(default_factory=list)  # one per token fed (prompt, then generated)
    routing_mode: str = "per-token"


@dataclass
class TokenEvent:
    token_id: int


@dataclass
class FinishEvent:
    result: GenerationResult


Event = TokenEvent | FinishEvent


class RequestHandle:
    """The caller's side of a request: its event queue and a cancel switch."""

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.cancelled = False
        self._loop = loop

    def cancel(self) -> None:
        """Stop generating (client gone or stop string hit); a FinishEvent still follows."""
        self.cancelled = True

    def post(self, event: Event) -> None:
        # RuntimeError: the loop closed under us at shutdown, nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.events.put_nowait, event)


@dataclass
class _Active:
    handle: RequestHandle
    generator: torch.Generator
    state: SequenceState | None = None
    shadow_state: SequenceState | None = None
    shadow: ShadowTally | None = None
    tokens: list[int] = field(default_factory=list)
    start_t: float = 0.0
    changes: list[tuple[int, float]] = field(default_factory=list)
    last_token_s: float = 0.0


class Scheduler:
    """The batching worker (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        metrics: RuntimeMetrics,
        routing_temperature: Callable[[], float],
        *,
        max_batch: int = 8,
        max_queue: int = 64,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.routing_temperature = routing_temperature
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.busy_s = 0.0  # time spent inside forward, read by the power estimate
        self.flops_executed = 0.0
        self.flops_full = 0.0
        self._waiting: collections.deque[RequestHandle] = collections.deque()
        self._active: list[_Active] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="thermostat-engine", daemon=True)
        self._mean_request_s = 1.0
        self._raw_t, self._clamped_t = float("nan"), 1.0

    # --- caller side (event loop) ---
    def start(self) -> None:
        self._thread.start()

    def submit(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> RequestHandle:
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                raise QueueFullError(self._retry_after_s())
            handle = RequestHandle(request, loop)
            self._waiting.append(handle)
            self._update_gauges()
            self._cond.notify()
        return handle

    def pending(self) -> int:
        """Requests admitted and not finished (waiting + in the batch)."""
        with self._cond:
            return len(self._waiting) + len(self._active)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _retry_after_s(self) -> int:
        waves = (len(self._waiting) + len(self._active)) / max(1, self.max_batch)
        return max(1, round(waves * self._mean_request_s))

    def _update_gauges(self) -> None:
        self.metrics.queue_depth.set(len(self._waiting))
        self.metrics.in_flight.set(len(self._waiting) + len(self._active))

    # --- worker side ---
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._waiting and not self._active:
                    self._cond.wait()
                if self._stopping:
                    self._abandon()
                    return
                while self._waiting and len(self._active) < self.max_batch:
                    handle = self._waiting.popleft()
                    self._active.append(_Active(handle, new_generator(handle.request.seed)))
                self._update_gauges()
            try:
                self._step()
            except Exception:
                log.exception("forward step failed; failing the batch")
                self._fail_batch()

    def _step(self) -> None:
        temperature = self._clamped(self.routing_temperature())
        for item in [a for a in self._active if a.handle.cancelled]:
            self._finish(item, "cancelled")
        if not self._active:
            return
        states, rows = self._build_rows(temperature)
        before = {id(a.state): (a.state.flops_executed, a.state.flops_full) for a in self._active if a.state}
        start = time.monotonic()
        out = self.engine.forward(states, rows)
        self.busy_s += time.monotonic() - start
        self._account_flops(before)
        # Sampling and shadow comparison run on CPU with per-request CPU generators.
        self._emit(out.logits.float().cpu())

    def _clamped(self, raw: float) -> float:
        """Clamp into [T_min, 1], once per new value (the engine logs each clamp)."""
        if raw != self._raw_t:
            self._raw_t, self._clamped_t = raw, self.engine.clamp(raw)
            self.metrics.routing_temperature.set(self._clamped_t)
        return self._clamped_t

    def _build_rows(self, temperature: float) -> tuple[list[SequenceState], list[list[int]]]:
        states: list[SequenceState] = []
        rows: list[list[int]] = []
        for item in self._active:
            request = item.handle.request
            if item.state is None:
                item.state = self.engine.new_sequence(routing_temperature=temperature, seed=request.seed)
                item.start_t = temperature
                if request.shadow:
                    item.shadow_state = self.engine.new_sequence(routing_temperature=1.0, seed=request.seed)
                    item.shadow = ShadowTally()
                row = list(request.prompt_ids)
                self.metrics.tokens.labels(kind="prompt").inc(len(row))
            else:
                if item.state.routing_temperature != temperature:
                    item.state.routing_temperature = temperature
                    item.changes.append((len(item.tokens), temperature))
                row = [item.tokens[-1]]
            states.append(item.state)
            rows.append(row)
            if item.shadow_state is not None:
                states.append(item.shadow_state)
                rows.append(list(row))
        return states, rows

    def _account_flops(self, before: dict[int, tuple[float, float]]) -> None:
        """Add this step's served FLOPs (shadow sequences excluded) to the counters."""
        executed = full = 0.0
        for item in self._active:
            if item.state is not None:
                prev_executed, prev_full = before[id(item.state)]
                executed += item.state.flops_executed - prev_executed
                full += item.state.flops_full - prev_full
        self.flops_executed += executed
        self.flops_full += full
        self.metrics.flops_executed.inc(executed)
        self.metrics.flops_full.inc(full)

    def _emit(self, logits: torch.Tensor) -> None:
        row = 0
        now = time.monotonic()
        for item in list(self._active):
            routed = logits[row]
            row += 1
            if item.shadow is not None:
                agree, kl = compare(logits[row], routed)
                row += 1
                item.shadow.tokens += 1
                item.shadow.agree_tokens += int(agree)
                item.shadow.kl_nats += kl
                item.shadow.kl_sq_nats += kl * kl
            self._take_token(item, routed, now)

    def _take_token(self, item: _Active, logits: torch.Tensor, now: float) -> None:
        request = item.handle.request
        token = sample_token(logits, temperature=request.temperature, top_p=request.top_p, generator=item.generator)
        if token in self.engine.stop_ids and not request.ignore_eos:
            self._finish(item, "stop")
            return
        if item.tokens:
            self.metrics.time_per_output_token.observe(now - item.last_token_s)
        else:
            self.metrics.time_to_first_token.observe(now - request.arrival_s)
        item.last_token_s = now
        item.tokens.append(token)
        self.metrics.tokens.labels(kind="generated").inc()
        item.handle.post(TokenEvent(token))
        context_full = len(request.prompt_ids) + len(item.tokens) >= self.engine.context_length
        if len(item.tokens) >= request.max_tokens or context_full:
            self._finish(item, "length")

    def _finish(self, item: _Active, reason: str) -> None:
        request = item.handle.request
        state = item.state
        result = GenerationResult(
            token_ids=item.tokens,
            finish_reason=reason,
            prompt_tokens=len(request.prompt_ids),
            routing_temperature=item.start_t if state is not None else self._clamped_t,
            routing_seed=request.seed,
            executed_fraction=state.executed_fraction if state is not None else 1.0,
            flops_executed=state.flops_executed if state is not None else 0.0,
            flops_full=state.flops_full if state is not None else 0.0,
            routing_changes=item.changes,
            shadow=item.shadow,
            gate_hashes=list(getattr(state, "gate_hashes", [])),
            routing_mode=getattr(self.engine, "routing_mode", "per-token"),
        )
        if item.shadow is not None:
            self.metrics.shadow_tokens.inc(item.shadow.tokens)
            self.metrics.shadow_agree_tokens.inc(item.shadow.agree_tokens)
            self.metrics.shadow_kl_nats.inc(item.shadow.kl_nats)
            self.metrics.shadow_kl_sq_nats.inc(item.shadow.kl_sq_nats)
        self._mean_request_s = 0.8 * self._mean_request_s + 0.2 * (time.monotonic() - request.arrival_s)
        with self._cond:
            self._active.remove(item)
            self._update_gauges()
        item.handle.post(FinishEvent(result))

    def _fail_batch(self) -> None:
        for item in list(self._active):
            self._finish(item, "error")

    def _abandon(self) -> None:
        """At stop: whatever is left (only after a drain timed out) finishes as an error."""
        self._active.extend(_Active(handle, new_generator(0)) for handle in self._waiting)
        self._waiting.clear()
        for item in list(self._active):
            self._finish(item, "error")  # the condition's lock is re-entrant
