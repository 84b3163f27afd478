"""Answering one admitted request: a whole JSON response or an SSE stream, then metrics and the log line.

Tokens arrive from the scheduler as events; ``TextStream`` turns them into text (holding back partial
characters and possible stop strings). A stop string cancels the request in the scheduler, which then
sends its finish event with the final usage. A client that disconnects mid-stream cancels its request
too; it is logged with code 499 and not counted in ``thermostat_requests_total`` (no answer was sent).
The log line carries the request's routing record (router hash, mode, one gate-mask hash per token) for
``thermostat-runtime replay --explain``. This module needs only ``Responder`` from the server (no import
of ``server``: the server imports this module).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from thermostat_runtime import openai_api
from thermostat_runtime.detokenize import TextStream
from thermostat_runtime.request_log import RequestLog, tokens_sha256
from thermostat_runtime.scheduler import FinishEvent, GenerationResult, RequestHandle, TokenEvent

if TYPE_CHECKING:
    from thermostat_runtime.engine import Engine
    from thermostat_runtime.metrics import RuntimeMetrics
    from thermostat_runtime.openai_api import ParsedRequest


class Responder(Protocol):
    """What answering a request needs from the server (``server.RuntimeServer`` provides it)."""

    responding: int
    model_id: str
    engine: Engine
    metrics: RuntimeMetrics
    request_log: RequestLog

    def refuse(
        self, code: int, message: str, record: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> web.Response: ...


async def respond(
    server: Responder, request: web.Request, parsed: ParsedRequest, handle: RequestHandle, record: dict[str, Any]
) -> web.StreamResponse:
    server.responding += 1
    try:
        if parsed.stream:
            return await _stream(server, request, parsed, handle, record)
        return await _whole(server, parsed, handle, record)
    finally:
        server.responding -= 1


async def _next(handle: RequestHandle, text: TextStream, on_text: Any = None) -> GenerationResult:
    """Consume events until the finish; ``on_text`` gets each text delta."""
    while True:
        event = await handle.events.get()
        if isinstance(event, FinishEvent):
            return event.result
        assert isinstance(event, TokenEvent)
        delta = text.push(event.token_id)
        if text.stopped and not handle.cancelled:
            handle.cancel()
        if delta and on_text is not None:
            await on_text(delta)


async def _whole(
    server: Responder, parsed: ParsedRequest, handle: RequestHandle, record: dict[str, Any]
) -> web.StreamResponse:
    text = TextStream(server.engine.decode, parsed.stop)
    result = await _next(handle, text)
    text.flush()
    if result.finish_reason == "error":
        return server.refuse(500, "generation failed; see the server log", record)
    reason = openai_api.finish_reason(result, text.stopped)
    body = openai_api.response_body(
        handle.request.request_id, server.model_id, parsed.kind, text=text.text, reason=reason, result=result
    )
    _finish(server, handle, result, record, code=200, reason=reason)
    return web.json_response(body)


async def _stream(
    server: Responder, request: web.Request, parsed: ParsedRequest, handle: RequestHandle, record: dict[str, Any]
) -> web.StreamResponse:
    rid, model, kind = handle.request.request_id, server.model_id, parsed.kind
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    first = [True]

    async def send(payload: dict[str, Any] | str) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        await response.write(f"data: {data}\n\n".encode())

    async def on_text(delta: str) -> None:
        await send(openai_api.chunk_body(rid, model, kind, delta, None, first=first[0]))
        first[0] = False

    text = TextStream(server.engine.decode, parsed.stop)
    try:
        result = await _next(handle, text, on_text)
        if result.finish_reason == "error":
            await send(openai_api.error_body("generation failed; see the server log", "server_error"))
            _finish(server, handle, result, record, code=500, reason="error")
            return response
        tail = text.flush()
        if tail:
            await on_text(tail)
        reason = openai_api.finish_reason(result, text.stopped)
        await send(openai_api.chunk_body(rid, model, kind, None, reason, first=first[0]))
        if parsed.include_usage:
            await send(openai_api.usage_chunk(rid, model, kind, result))
        await send("[DONE]")
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        handle.cancel()
        server.request_log.write({**record, "code": 499, "error": "client closed the connection"})
        return response
    _finish(server, handle, result, record, code=200, reason=reason)
    return response


def _finish(
    server: Responder,
    handle: RequestHandle,
    result: GenerationResult,
    record: dict[str, Any],
    *,
    code: int,
    reason: str,
) -> None:
    duration_s = time.monotonic() - handle.request.arrival_s
    server.metrics.requests.labels(code=str(code)).inc()
    if code == 200:
        server.metrics.request_duration.observe(duration_s)
    shadow = result.shadow
    server.request_log.write(
        {
            **record,
            "code": code,
            "finish_reason": reason,
            "duration_s": round(duration_s, 4),
            **openai_api.usage(result),
            "routing_changes": result.routing_changes,
            "completion_sha256": tokens_sha256(result.token_ids),
            "routing": {"router_hash": server.engine.router_hash, "mode": result.routing_mode,
                        "gate_hashes": result.gate_hashes},
            "shadow": None
            if shadow is None
            else {"tokens": shadow.tokens, "agree_tokens": shadow.agree_tokens, "kl_nats": shadow.kl_nats},
        }
    )
