"""The runtime's OpenAPI 3.1 document, served at ``GET /openapi.json``.

The request bodies' schemas come from the very pydantic models the server validates with
(``openai_api.CompletionBody`` / ``ChatBody``), so the document cannot drift from what is accepted.
Checks the models cannot express (at most 4 ``stop`` strings, one prompt per request, the prompt and
``max_tokens`` within the server's limits) are answered 400 and documented as such.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from thermostat_runtime import __version__
from thermostat_runtime.openai_api import ChatBody, CompletionBody

_REF = "#/components/schemas/{model}"
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"}},
        }
    },
}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, {"$ref": "#/components/schemas/Error"})


def _generation(summary: str, body: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "operationId": body[0].lower() + body[1:].replace("Body", ""),
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": _REF.format(model=body)}}},
            },
            "responses": {
                "200": {
                    "description": "the completion (JSON), or a server-sent event stream when `stream` is true",
                    "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {}},
                },
                "400": _error("the body is not valid JSON or a field is invalid; the message names the field"),
                "413": {"description": "the body is larger than the server accepts (4 MiB)"},
                "429": _error("the queue is full; retry after the `Retry-After` header's seconds"),
                "503": _error("the server is draining; retry on another replica"),
            },
        }
    }


def _get(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": responses}}


def document() -> dict[str, Any]:
    """The whole OpenAPI document (a fresh dict; the caller may keep or change it)."""
    _, defs = models_json_schema([(CompletionBody, "validation"), (ChatBody, "validation")], ref_template=_REF)
    schemas = {**defs["$defs"], "Error": _ERROR}
    metrics = {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
    paths = {
        "/v1/completions": _generation("a text completion", "CompletionBody"),
        "/v1/chat/completions": _generation("a chat completion", "ChatBody"),
        "/v1/models": _get("the served model", {"200": _json("the model list")}),
        "/healthz": _get("liveness", {"200": _json("the process is alive")}),
        "/readyz": _get("readiness", {"200": _json("ready"), "503": _json("draining or no temperature yet")}),
        "/metrics": _get("the runtime's metrics", {"200": metrics}),
        "/v1/routing/profile": _get(
            "the routing profile", {"200": _json("the profile"), "404": _error("no profile for this model")}
        ),
        "/openapi.json": _get("this document", {"200": _json("the OpenAPI document")}),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Thermostat runtime", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }
