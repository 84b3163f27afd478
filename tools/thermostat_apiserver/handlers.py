"""The REST verbs over the store: get, list, watch, create, update, patch, delete, and subresources.

Each handler takes a parsed request and returns a JSON body with its HTTP status (or streams a
watch); errors are :class:`ApiError` and become ``Status`` objects. Discovery and OpenAPI live in
:mod:`discovery`, tables in :mod:`tables`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web

from thermostat_apiserver import errors, tables
from thermostat_apiserver.patching import APPLY_PATCH, apply_patch
from thermostat_apiserver.resources import ResourceType
from thermostat_apiserver.routing import Route
from thermostat_apiserver.selectors import field_selector, label_selector, selector_string
from thermostat_apiserver.store import CLOSE_WATCH, Event, Obj, Store

Reply = tuple[int, Any]


@dataclass
class ApiRequest:
    """What the handlers need from one HTTP request."""

    method: str
    route: Route
    rt: ResourceType
    params: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    raw: aiohttp.web.BaseRequest | None = field(default=None, repr=False)

    @property
    def strict(self) -> bool:
        return self.params.get("fieldValidation", "") == "Strict"

    @property
    def dry_run(self) -> bool:
        return bool(self.params.get("dryRun"))

    @property
    def namespace(self) -> str:
        return self.route.namespace or ""


def _matcher(req: ApiRequest) -> Any:
    labels = label_selector(req.params.get("labelSelector"))
    fields = field_selector(req.params.get("fieldSelector"))
    namespace, name = req.route.namespace, req.route.name

    def matches(obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        if namespace and meta.get("namespace") != namespace:
            return False
        if name and meta.get("name") != name:
            return False
        return labels(obj) and fields(obj)

    return matches


def list_objects(store: Store, req: ApiRequest) -> Reply:
    matches = _matcher(req)
    items = [obj for obj in store.objects(req.rt, req.route.namespace) if matches(obj)]
    if tables.wants_table(req.headers.get("Accept", "")):
        return 200, tables.table(
            req.rt, items, store.resource_version, include_object=req.params.get("includeObject", "Metadata")
        )
    return 200, {
        "kind": f"{req.rt.kind}List",
        "apiVersion": req.rt.api_version,
        "metadata": {"resourceVersion": store.resource_version},
        "items": items,
    }


def get_object(store: Store, req: ApiRequest) -> Reply:
    assert req.route.name is not None
    obj = store.get(req.rt, req.namespace, req.route.name)
    if req.route.subresource == "scale":
        return 200, _scale_of(req.rt, obj)
    if tables.wants_table(req.headers.get("Accept", "")):
        return 200, tables.table(
            req.rt, [obj], store.resource_version, include_object=req.params.get("includeObject", "Metadata")
        )
    return 200, obj


def _check_body(req: ApiRequest) -> Obj:
    if not isinstance(req.body, dict):
        raise errors.bad_request("the request body must be a JSON (or YAML) object")
    kind = req.body.get("kind")
    if req.route.subresource is None and kind and kind != req.rt.kind:
        raise errors.bad_request(
            f"the kind {kind!r} of the object does not match the resource {req.rt.plural!r} (kind {req.rt.kind!r})"
        )
    return req.body


def create_object(store: Store, req: ApiRequest) -> Reply:
    obj = _check_body(req)
    return 201, store.create(req.rt, req.route.namespace, obj, strict=req.strict, dry_run=req.dry_run)


def replace_object(store: Store, req: ApiRequest) -> Reply:
    assert req.route.name is not None
    obj = _check_body(req)
    if req.route.subresource == "scale":
        return 200, _write_scale(store, req, obj)
    return 200, _update(store, req, obj)


def _update(store: Store, req: ApiRequest, obj: Obj) -> Obj:
    """Write the whole object (or its subresource) named by the request, with its options."""
    assert req.route.name is not None
    return store.update(
        req.rt,
        req.namespace,
        req.route.name,
        obj,
        subresource=req.route.subresource,
        strict=req.strict,
        dry_run=req.dry_run,
    )


def patch_object(store: Store, req: ApiRequest) -> Reply:
    assert req.route.name is not None
    content_type = req.headers.get("Content-Type", "application/merge-patch+json")
    current = store.find(req.rt, req.namespace, req.route.name)
    if current is None and content_type.startswith(APPLY_PATCH) and req.route.subresource is None:
        return create_object(store, req)  # server-side apply creates what does not exist yet
    if current is None:
        raise errors.not_found(req.rt.plural, req.route.name, req.rt.group)
    if req.route.subresource == "scale":
        scale = apply_patch(content_type, _scale_of(req.rt, current), req.body)
        return 200, _write_scale(store, req, scale)
    patched = apply_patch(content_type, current, req.body)
    return 200, _update(store, req, patched)


def _delete_options(req: ApiRequest) -> Obj:
    options = dict(req.body) if isinstance(req.body, dict) else {}
    if "propagationPolicy" in req.params:
        options["propagationPolicy"] = req.params["propagationPolicy"]
    return options


def delete_object(store: Store, req: ApiRequest) -> Reply:
    assert req.route.name is not None
    options = _delete_options(req)
    preconditions = options.get("preconditions") or {}
    obj = store.delete(
        req.rt,
        req.namespace,
        req.route.name,
        propagation=options.get("propagationPolicy") or "Background",
        precondition_uid=preconditions.get("uid"),
        precondition_rv=preconditions.get("resourceVersion"),
        dry_run=req.dry_run,
    )
    return 200, obj


def delete_collection(store: Store, req: ApiRequest) -> Reply:
    matches = _matcher(req)
    options = _delete_options(req)
    deleted = []
    for obj in store.objects(req.rt, req.route.namespace):
        if matches(obj):
            meta = obj["metadata"]
            with contextlib.suppress(errors.ApiError):  # gone meanwhile through a cascade: fine
                deleted.append(
                    store.delete(
                        req.rt,
                        meta.get("namespace", ""),
                        meta["name"],
                        propagation=options.get("propagationPolicy") or "Background",
                    )
                )
    return 200, {
        "kind": f"{req.rt.kind}List",
        "apiVersion": req.rt.api_version,
        "metadata": {"resourceVersion": store.resource_version},
        "items": deleted,
    }


def _scale_of(rt: ResourceType, obj: Obj) -> Obj:
    if not rt.has("scale"):
        raise errors.not_found(f"{rt.plural}/scale", obj["metadata"]["name"], rt.group)
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": selector_string(obj.get("spec", {}).get("selector") or {}),
        },
    }


def _write_scale(store: Store, req: ApiRequest, scale: Obj) -> Obj:
    assert req.route.name is not None
    obj = store.get(req.rt, req.namespace, req.route.name)
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid(
            "Scale",
            req.route.name,
            "autoscaling",
            [("spec.replicas", f"must be a non-negative integer, got {replicas!r}")],
        )
    sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
    obj.setdefault("spec", {})["replicas"] = replicas
    obj["metadata"]["resourceVersion"] = sent_rv or obj["metadata"]["resourceVersion"]
    updated = store.update(req.rt, req.namespace, req.route.name, obj, dry_run=req.dry_run)
    return _scale_of(req.rt, updated)


def _since(req: ApiRequest) -> int | None:
    text = req.params.get("resourceVersion") or ""
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise errors.bad_request(f"resourceVersion {text!r} is not one this server issued (decimal numbers)") from None


async def watch_objects(store: Store, req: ApiRequest) -> aiohttp.web.StreamResponse:
    """Stream events as JSON lines until ``timeoutSeconds`` or the client leaves; 410 when too old."""
    assert req.raw is not None
    response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(req.raw)
    try:
        replay, queue = store.watch(req.rt, _since(req))
    except errors.ApiError as error:
        await response.write(json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n")
        await response.write_eof()
        return response
    try:
        await _stream(store, req, response, replay, queue)
    finally:
        store.unwatch(req.rt, queue)
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


async def _stream(
    store: Store,
    req: ApiRequest,
    response: aiohttp.web.StreamResponse,
    replay: list[Event],
    queue: asyncio.Queue[Event],
) -> None:
    matches = _matcher(req)
    timeout = float(req.params.get("timeoutSeconds") or 1800)
    bookmarks = req.params.get("allowWatchBookmarks") == "true"
    deadline = time.monotonic() + timeout
    for event in replay:
        if matches(event.obj):
            await response.write(_encode(store, req, event))
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            event = await asyncio.wait_for(queue.get(), timeout=min(remaining, 30.0))
        except TimeoutError:
            if bookmarks:  # tell the client how far it has seen, so a resume never starts too old
                bookmark = {
                    "kind": req.rt.kind,
                    "apiVersion": req.rt.api_version,
                    "metadata": {"resourceVersion": store.resource_version},
                }
                await response.write(json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n")
            continue
        if event is CLOSE_WATCH:
            return
        if matches(event.obj):
            await response.write(_encode(store, req, event))


def _encode(store: Store, req: ApiRequest, event: Event) -> bytes:
    """One watch event as a JSON line; a one-row Table when the client asked for tables (``get -w``)."""
    obj = event.obj
    if tables.wants_table(req.headers.get("Accept", "")):
        obj = tables.table(req.rt, [obj], str(event.rv), include_object=req.params.get("includeObject", "Metadata"))
    return json.dumps({"type": event.type, "object": obj}).encode() + b"\n"
