"""The runtime's HTTP server (aiohttp): the OpenAI-compatible API and the probes of DESIGN §3.

Routes: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (SSE streaming with
usage in the final chunk when ``stream_options.include_usage``), ``GET /healthz`` (alive),
``GET /readyz`` (routing temperature read, not draining), ``GET /metrics``, ``GET /v1/routing/profile``,
``GET /openapi.json`` (the document of all of these, built from the validating models: ``openapi``).
Generation itself lives in ``scheduler``; request parsing and response shapes in ``openai_api``.

Drain (SIGTERM, see ``serve``): ``/readyz`` turns 503 at once, new generation requests get 503, every
request already admitted (in the batch or in the queue) runs to completion and its response is sent,
then the process exits — bounded by ``drain_timeout_s``, after which the rest are answered 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from thermostat_runtime import generation, openapi
from thermostat_runtime.engine import Engine
from thermostat_runtime.metrics import CONTENT_TYPE, RuntimeMetrics
from thermostat_runtime.openai_api import BadRequestError, ParsedRequest, error_body, parse_chat, parse_completion
from thermostat_runtime.power import PowerMonitor, WorkCounters
from thermostat_runtime.request_log import RequestLog
from thermostat_runtime.routing_config import RoutingSetting
from thermostat_runtime.scheduler import GenerationRequest, QueueFullError, Scheduler
from thermostat_runtime.shadow import ShadowSelector

log = logging.getLogger(__name__)


class RoutingSource(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class ServerSettings:
    """Limits and options of one server (the ``serve`` flags)."""

    model_id: str | None = None
    max_batch: int = 8
    max_queue: int = 64
    max_tokens_limit: int = 512
    max_prompt_tokens: int = 2048
    shadow_fraction: float = 0.0
    slo_target_seconds: float | None = None  # one more latency bucket boundary (DESIGN §3)
    drain_timeout_s: float = 30.0
    profile_path: Path | None = None
    request_log: Path | None = None
    power_interval_s: float = 1.0


class RuntimeServer:
    """One engine served over HTTP (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        settings: ServerSettings,
        routing: RoutingSetting,
        sources: list[RoutingSource],
        *,
        nvml: Any | None = None,
    ) -> None:
        self.engine, self.settings, self.routing, self.sources = engine, settings, routing, sources
        self.model_id = settings.model_id or engine.name
        self.metrics = RuntimeMetrics(slo_target_seconds=settings.slo_target_seconds)
        routing.on_stale.append(lambda stale: self.metrics.routing_config_stale.set(int(stale)))
        routing.on_change.append(lambda value: self.metrics.routing_temperature.set(engine.clamp(value)))
        self.scheduler = Scheduler(
            engine, self.metrics, routing.current, max_batch=settings.max_batch, max_queue=settings.max_queue
        )
        self.power = PowerMonitor(self.metrics, self._work, nvml=nvml, interval_s=settings.power_interval_s)
        self.shadow = ShadowSelector(settings.shadow_fraction)
        self.request_log = RequestLog(settings.request_log)
        self.draining = False
        self.responding = 0  # responses being written (a finished request may still be sending)
        self.profile = load_profile(settings.profile_path, engine)
        self.metrics.routing_temperature.set(engine.clamp(routing.current()))
        self.openapi_document = openapi.document()

    def _work(self) -> WorkCounters:
        s = self.scheduler
        return WorkCounters(s.busy_s, s.flops_executed, s.flops_full)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.add_routes(
            [
                web.get("/v1/models", self.models),
                web.post("/v1/completions", self.completions),
                web.post("/v1/chat/completions", self.chat_completions),
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics_endpoint),
                web.get("/v1/routing/profile", self.routing_profile),
                web.get("/openapi.json", self.openapi),
            ]
        )
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        self.scheduler.start()
        for source in self.sources:
            await source.start()
        await self.power.start()

    async def _on_cleanup(self, _app: web.Application) -> None:
        for source in self.sources:
            await source.stop()
        await self.power.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.scheduler.stop)

    async def drain(self) -> bool:
        """Refuse new work and wait for admitted requests to finish; False if the timeout cut it short."""
        self.draining = True
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while self.scheduler.pending() or self.responding:
            if time.monotonic() > deadline:
                log.warning("drain timed out with %d requests pending", self.scheduler.pending())
                return False
            await asyncio.sleep(0.05)
        return True

    # --- probes and metadata ---
    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"ready": False, "reason": "draining"}, status=503)
        if not self.routing.ready:
            reason = "routing temperature not read yet"
            return web.json_response({"ready": False, "reason": reason}, status=503)
        return web.json_response({"ready": True, "routing_temperature": self.engine.clamp(self.routing.current())})

    async def models(self, _request: web.Request) -> web.Response:
        entry = {"id": self.model_id, "object": "model", "created": 0, "owned_by": "thermostat",
                 "t_min": self.engine.t_min, "router_hash": self.engine.router_hash}  # fmt: skip
        return web.json_response({"object": "list", "data": [entry]})

    async def metrics_endpoint(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def routing_profile(self, _request: web.Request) -> web.Response:
        if self.profile is None:
            message = f"no routing profile for model {self.engine.name} (router {self.engine.router_hash})"
            return web.json_response(error_body(message, "not_found"), status=404)
        return web.json_response(self.profile)

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(self.openapi_document)

    # --- generation ---
    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, parse_completion, "/v1/completions")

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, parse_chat, "/v1/chat/completions")

    async def _generate(
        self, request: web.Request, parse: Callable[[Any], ParsedRequest], endpoint: str
    ) -> web.StreamResponse:
        arrival = time.monotonic()
        request_id = ("chatcmpl-" if endpoint.endswith("chat/completions") else "cmpl-") + uuid.uuid4().hex[:24]
        record: dict[str, Any] = {"request_id": request_id, "endpoint": endpoint}
        if self.draining:
            return self.refuse(503, "server is shutting down; retry on another replica", record)
        try:
            parsed = parse(await _json_body(request))
            prompt_ids, max_tokens = self._admit(parsed)
        except BadRequestError as error:
            return self.refuse(400, str(error), record)
        seed = parsed.seed if parsed.seed is not None else random.randrange(2**31)
        work = GenerationRequest(
            request_id, prompt_ids, max_tokens, parsed.temperature, parsed.top_p, seed,
            shadow=self.shadow.choose(), ignore_eos=parsed.ignore_eos, arrival_s=arrival,
        )  # fmt: skip
        try:
            handle = self.scheduler.submit(work, asyncio.get_running_loop())
        except QueueFullError as full:
            return self.refuse(429, f"server busy: queue full ({self.settings.max_queue} waiting)", record,
                               headers={"Retry-After": str(full.retry_after_s)})  # fmt: skip
        record.update(body=parsed.body, prompt_ids=prompt_ids, max_tokens=max_tokens,
                      temperature=parsed.temperature, top_p=parsed.top_p)  # fmt: skip
        return await generation.respond(self, request, parsed, handle, record)

    def _admit(self, parsed: ParsedRequest) -> tuple[list[int], int]:
        """Check the model and sizes; returns (prompt ids, max new tokens)."""
        model = parsed.body.get("model")
        if model is not None and model != self.model_id:
            raise BadRequestError(f"unknown model '{model}'; this server serves '{self.model_id}' (see GET /v1/models)")
        ids = _prompt_ids(self.engine, parsed)
        limit = self.settings.max_prompt_tokens
        if not ids:
            raise BadRequestError("the prompt is empty; give at least one token of text")
        if len(ids) > limit:
            raise BadRequestError(f"prompt too long: {len(ids)} tokens; this server accepts at most {limit}")
        room = self.engine.context_length - len(ids)
        max_tokens = parsed.max_tokens or min(self.settings.max_tokens_limit, room)
        if max_tokens > self.settings.max_tokens_limit:
            raise BadRequestError(
                f"max_tokens {max_tokens} exceeds this server's limit {self.settings.max_tokens_limit}; ask for fewer"
            )
        if max_tokens > room:
            raise BadRequestError(
                f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceeds the context "
                f"length {self.engine.context_length}; shorten the prompt or lower max_tokens"
            )
        return ids, max_tokens

    def refuse(
        self, code: int, message: str, record: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> web.Response:
        """An error answer: counted, logged, with an OpenAI-style error body."""
        if str(code) in ("400", "429", "500"):
            self.metrics.requests.labels(code=str(code)).inc()
        self.request_log.write({**record, "code": code, "error": message})
        kind = {400: "invalid_request_error", 429: "rate_limit_exceeded", 503: "unavailable"}.get(code, "server_error")
        return web.json_response(error_body(message, kind), status=code, headers=headers)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequestError(f"the request body is not valid JSON: {error}") from error
    except RecursionError as error:
        # json.loads recurses per nesting level: a body of 200k '[' would otherwise be a 500
        raise BadRequestError("the request body nests JSON too deeply; flatten it") from error
    except LookupError as error:
        raise BadRequestError(f"the request's charset is unknown ({error}); send UTF-8 JSON") from error


def _prompt_ids(engine: Engine, parsed: ParsedRequest) -> list[int]:
    if parsed.messages is not None:
        return engine.encode_chat(parsed.messages)
    if parsed.prompt_ids is not None:
        bad = [i for i in parsed.prompt_ids if not 0 <= i < engine.vocab_size]
        if bad:
            raise BadRequestError(f"invalid field 'prompt': token ids {bad[:5]} outside [0, {engine.vocab_size})")
        return parsed.prompt_ids
    return engine.encode_text(parsed.prompt_text or "")


def load_profile(path: Path | None, engine: Engine) -> dict[str, Any] | None:
    """The routing profile to serve: ``path``, else the packaged one of this model (its router's first).

    Raises ValueError naming the file when the profile does not validate against the shared schema.
    """
    directory = Path(__file__).parent / "profiles"
    if path is not None:
        chosen: tuple[Path, dict[str, Any]] | None = (path, dict(json.loads(path.read_text())))
    else:
        files = sorted(directory.glob("*.json")) if directory.is_dir() else []
        mine = [(f, p) for f in files if (p := json.loads(f.read_text())).get("model") == engine.name]
        # The profile measured with these very routers first; another one of the same model otherwise.
        mine.sort(key=lambda item: item[1].get("router_hash") != engine.router_hash)
        chosen = mine[0] if mine else None
    if chosen is None:
        return None
    import jsonschema

    schema = json.loads((Path(__file__).parent / "schemas" / "profile.schema.json").read_text())
    try:
        jsonschema.validate(chosen[1], schema)
    except jsonschema.ValidationError as error:
        raise ValueError(f"routing profile {chosen[0]} is invalid: {error.message}") from error
    return chosen[1]
