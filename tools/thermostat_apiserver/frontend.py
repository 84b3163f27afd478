"""The HTTP front: a kmock handler that records requests, lets tests inject reactions, and dispatches.

kmock (by Kopf's author) provides the server, the request log and its reaction DSL: a test can
declare ``api.kmock['patch', kmock.resource('thermostat.dev', 'v1alpha1', 'routedmodels')][:1] << 409``
to make the next matching request fail once. Everything else reaches :class:`ApiDispatcher`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import enums, references, rendering

from thermostat_apiserver import protobuf
from thermostat_apiserver.errors import ApiError
from thermostat_apiserver.identity import SYSTEM, User, current_user
from thermostat_apiserver.rbac import request_verb
from thermostat_apiserver.routing import Route, parse_path

Dispatch = Callable[[rendering.Request, Route, Any], Awaitable[aiohttp.web.StreamResponse]]
# Authenticates and authorizes a request (route, method, query, headers, path): its user (None when the
# token is refused) and the refusal, if any.
Gate = Callable[[Route, str, dict[str, str], dict[str, str], str], tuple[User | None, ApiError | None]]


def _action(route: Route, method: str, query: dict[str, str]) -> enums.action | None:
    if route.plural is None:
        return None
    if method == "GET" and query.get("watch", "").lower() in ("true", "1"):
        return enums.action.WATCH
    if route.name is None:
        return {"GET": enums.action.LIST, "POST": enums.action.CREATE}.get(method)
    return {
        "GET": enums.action.FETCH,
        "PATCH": enums.action.UPDATE,
        "PUT": enums.action.UPDATE,
        "DELETE": enums.action.DELETE,
    }.get(method)


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "protobuf" in content_type:  # kubectl's typed `create` generators
        return protobuf.decode(raw)
    if "cbor" in content_type:
        raise ApiError(415, "UnsupportedMediaType", "CBOR bodies are not read here; send JSON or YAML")
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as error:
        raise ApiError(400, "BadRequest", f"the request body is not valid JSON or YAML: {error}") from error


def error_response(error: ApiError) -> aiohttp.web.Response:
    return aiohttp.web.json_response(error.status(), status=error.code)


@attrs.define(kw_only=True)
class KmockFrontend(kmock.RawHandler):
    """kmock's handler with Kubernetes path parsing that covers every path, and our dispatcher behind it."""

    dispatch: Dispatch | None = None
    gate: Gate | None = None
    audit: list[dict[str, Any]] = attrs.field(factory=list)
    # Called with each audit entry once answered (the command's --audit-log streams them to a file).
    audit_sink: Callable[[dict[str, Any]], None] | None = None

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        started = time.time()
        route = parse_path(raw_request.path)
        query = dict(raw_request.query)
        body = await raw_request.read()
        try:
            data = _decode(body, raw_request.headers.get("Content-Type", ""))
        except ApiError as error:
            return error_response(error)
        request = rendering.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=query,
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=data,
            body=body,
            text=body.decode(errors="replace"),
            action=_action(route, raw_request.method, query),
            resource=None
            if route.group is None
            else references.resource(group=route.group, version=route.version, plural=route.plural),
            namespace=route.namespace,
            name=route.name,
            subresource=route.subresource,
        )
        self._requests.append(request)
        user, refusal = (SYSTEM, None) if self.gate is None else self.gate(
            route, raw_request.method, query, dict(raw_request.headers), raw_request.path
        )  # fmt: skip
        entry = self._record(request, route, started, user)  # before serving: a watch cut at shutdown counts too
        if refusal is not None or user is None:
            return self._answered(entry, error_response(refusal or ApiError(401, "Unauthorized", "Unauthorized")))
        streaming = entry["verb"] == "watch"
        if streaming and self.audit_sink is not None:  # a watch streams for minutes: logged as it starts (200)
            self.audit_sink({**entry, "code": 200})
        token = current_user.set(user)
        try:
            response = await self._respond(request, route, data)
        finally:
            current_user.reset(token)
        return self._answered(entry, response, log=not streaming)

    def _answered(
        self, entry: dict[str, Any], response: aiohttp.web.StreamResponse, *, log: bool = True
    ) -> aiohttp.web.StreamResponse:
        entry["code"] = response.status
        if log and self.audit_sink is not None:
            self.audit_sink(entry)
        return response

    async def _respond(self, request: rendering.Request, route: Route, data: Any) -> aiohttp.web.StreamResponse:
        try:
            return await super()._handle(request)  # reactions declared through the kmock DSL come first
        except NotImplementedError:
            pass
        except Exception as error:  # a declared reaction that raises: shown as a server error
            return error_response(ApiError(500, "InternalError", f"{type(error).__name__}: {error}"))
        assert self.dispatch is not None
        try:
            return await self.dispatch(request, route, data)
        except ApiError as error:
            return error_response(error)

    def _record(self, request: rendering.Request, route: Route, started: float, user: User | None) -> dict[str, Any]:
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        verb = request_verb(route, method, dict(request.params)) if route.plural else method.lower()
        entry: dict[str, Any] = {
            "time": started,
            "verb": verb,
            "path": request.url.path,
            "group": route.group,
            "version": route.version,
            "resource": route.plural,
            "subresource": route.subresource,
            "namespace": route.namespace,
            "name": route.name,
            "userAgent": request.headers.get("User-Agent", ""),
            "user": user.name if user else None,
            "groups": list(user.groups) if user else [],
            "query": dict(request.params),
            "code": None,
        }
        self.audit.append(entry)
        return entry
