"""The OpenAI-compatible request bodies (validated, with clear 400 messages) and response shapes.

``parse_completion`` / ``parse_chat`` turn a JSON body into a ``ParsedRequest`` or raise
``BadRequestError`` naming the field and how to fix it. Responses carry the standard ``usage`` plus the
flat routing fields of DESIGN §3: ``routing_temperature``, ``routing_seed``, ``executed_fraction``.
A request's ``temperature`` is the sampling temperature; it never touches routing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from thermostat_runtime.scheduler import GenerationResult

SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1


class BadRequestError(Exception):
    """A request the server refuses with 400; the message is shown to the client."""


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    seed: Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX)] | None = None
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    stop: str | list[str] | None = None
    n: Literal[1] = 1
    ignore_eos: bool = False


class CompletionBody(_Common):
    prompt: str | list[str] | list[int]
    echo: Literal[False] = False
    logprobs: None = None
    best_of: Literal[1] | None = None


class _TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[_TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatBody(_Common):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: Literal[False] | None = None


@dataclass
class ParsedRequest:
    """A validated request: what to generate and how to answer."""

    kind: Literal["completion", "chat"]
    body: dict[str, Any]
    prompt_text: str | None
    prompt_ids: list[int] | None
    messages: list[dict[str, str]] | None
    max_tokens: int | None
    temperature: float
    top_p: float
    seed: int | None
    stream: bool
    include_usage: bool
    stop: list[str]
    ignore_eos: bool = False


def _message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"invalid field '{where}': {first['msg']} (got {first.get('input')!r})"


def _common(body: dict[str, Any], model: _Common) -> dict[str, Any]:
    stop = [model.stop] if isinstance(model.stop, str) else list(model.stop or [])
    if len(stop) > 4 or any(s == "" for s in stop):
        raise BadRequestError("invalid field 'stop': give at most 4 non-empty strings")
    return {
        "body": body,
        "temperature": model.temperature,
        "top_p": model.top_p,
        "seed": model.seed,
        "stream": model.stream,
        "include_usage": bool((model.stream_options or {}).get("include_usage", False)),
        "stop": stop,
        "ignore_eos": model.ignore_eos,
    }


def parse_completion(body: Any) -> ParsedRequest:
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    try:
        parsed = CompletionBody.model_validate(body)
    except ValidationError as error:
        raise BadRequestError(_message(error)) from error
    prompt = parsed.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        if len(prompt) != 1:
            raise BadRequestError("invalid field 'prompt': only one prompt per request is supported (n = 1)")
        prompt = prompt[0]
    if isinstance(prompt, list) and not prompt:
        raise BadRequestError("invalid field 'prompt': empty; give a string or a list of token ids")
    text = prompt if isinstance(prompt, str) else None
    ids = None if isinstance(prompt, str) else [int(i) for i in prompt]
    return ParsedRequest(
        kind="completion", prompt_text=text, prompt_ids=ids, messages=None,
        max_tokens=parsed.max_tokens if parsed.max_tokens is not None else 16, **_common(body, parsed),
    )  # fmt: skip


def parse_chat(body: Any) -> ParsedRequest:
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    try:
        parsed = ChatBody.model_validate(body)
    except ValidationError as error:
        raise BadRequestError(_message(error)) from error
    messages = [{"role": m.role, "content": m.text()} for m in parsed.messages]
    max_tokens = parsed.max_completion_tokens if parsed.max_completion_tokens is not None else parsed.max_tokens
    return ParsedRequest(
        kind="chat", prompt_text=None, prompt_ids=None, messages=messages, max_tokens=max_tokens,
        **_common(body, parsed),
    )  # fmt: skip


def usage(result: GenerationResult) -> dict[str, Any]:
    completion = len(result.token_ids)
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": result.prompt_tokens + completion,
        "routing_temperature": result.routing_temperature,
        "routing_seed": result.routing_seed,
        "executed_fraction": result.executed_fraction,
    }


def finish_reason(result: GenerationResult, stopped_by_string: bool) -> str:
    return "stop" if stopped_by_string or result.finish_reason == "stop" else "length"


def response_body(
    request_id: str, model: str, kind: str, *, text: str, reason: str, result: GenerationResult
) -> dict[str, Any]:
    """A whole (non-streaming) completion or chat completion."""
    if kind == "chat":
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None}
        obj = "text_completion"
    choice["finish_reason"] = reason
    return {"id": request_id, "object": obj, "created": int(time.time()), "model": model,
            "choices": [choice], "usage": usage(result)}  # fmt: skip


def chunk_body(
    request_id: str, model: str, kind: str, text: str | None, reason: str | None, *, first: bool
) -> dict[str, Any]:
    """One streamed chunk: a text delta, or (with ``reason``) the finishing chunk."""
    if kind == "chat":
        delta: dict[str, Any] = {} if text is None else {"content": text}
        if first:
            delta["role"] = "assistant"
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "logprobs": None}
        obj = "text_completion"
    choice["finish_reason"] = reason
    return {"id": request_id, "object": obj, "created": int(time.time()), "model": model, "choices": [choice]}


def usage_chunk(request_id: str, model: str, kind: str, result: GenerationResult) -> dict[str, Any]:
    """The final chunk of a stream with ``stream_options.include_usage``: no choices, the usage."""
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    return {"id": request_id, "object": obj, "created": int(time.time()), "model": model,
            "choices": [], "usage": usage(result)}  # fmt: skip


def error_body(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
