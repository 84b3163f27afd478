"""Watches as clients use them: a field selector on one ConfigMap, resuming, and 410 when too old."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from thermostat_apiserver import ApiServer

pytestmark = [pytest.mark.integration]


async def _events(url: str, *, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Read ``count`` events from a watch URL (the timeout only bounds a failing test)."""
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200

        async def read() -> None:
            async for line in response.content:
                events.append(json.loads(line))
                if len(events) >= count:
                    return

        await asyncio.wait_for(read(), timeout)
    return events


async def test_a_field_selector_watch_sees_only_its_configmap(api: ApiServer) -> None:
    cms = api.registry.require("", "v1", "configmaps")
    api.store.create(cms, "default", {"metadata": {"name": "other"}, "data": {"x": "1"}})
    api.store.create(cms, "default", {"metadata": {"name": "chat-routing"}, "data": {"routing_temperature": "1.0"}})
    url = f"{api.url}/api/v1/namespaces/default/configmaps?watch=true&fieldSelector=metadata.name%3Dchat-routing"
    reader = asyncio.create_task(_events(url, count=2))
    await asyncio.sleep(0.2)
    other = api.store.get(cms, "default", "other")
    other["data"]["x"] = "2"
    api.store.update(cms, "default", "other", other)
    mine = api.store.get(cms, "default", "chat-routing")
    mine["data"]["routing_temperature"] = "0.6"
    api.store.update(cms, "default", "chat-routing", mine)
    first, second = await reader
    assert (first["type"], first["object"]["data"]) == ("ADDED", {"routing_temperature": "1.0"})
    assert (second["type"], second["object"]["data"]) == ("MODIFIED", {"routing_temperature": "0.6"})


async def test_a_watch_resumed_from_a_resource_version_gets_what_it_missed(api: ApiServer) -> None:
    cms = api.registry.require("", "v1", "configmaps")
    created = api.store.create(cms, "default", {"metadata": {"name": "cm"}, "data": {"v": "0"}})
    seen = created["metadata"]["resourceVersion"]
    for value in ("1", "2"):  # changes made while the client was away
        obj = api.store.get(cms, "default", "cm")
        obj["data"]["v"] = value
        api.store.update(cms, "default", "cm", obj)
    url = f"{api.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={seen}"
    events = await _events(url, count=2)
    assert [(e["type"], e["object"]["data"]["v"]) for e in events] == [("MODIFIED", "1"), ("MODIFIED", "2")]


async def test_a_watch_from_a_compacted_resource_version_gets_410() -> None:
    async with ApiServer(history=5) as api:
        cms = api.registry.require("", "v1", "configmaps")
        first = api.store.create(cms, "default", {"metadata": {"name": "cm"}, "data": {"v": "0"}})
        for value in range(10):
            obj = api.store.get(cms, "default", "cm")
            obj["data"]["v"] = str(value)
            api.store.update(cms, "default", "cm", obj)
        since = first["metadata"]["resourceVersion"]
        url = f"{api.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={since}"
        (event,) = await _events(url, count=1)
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


async def test_a_stale_resource_version_is_a_409_and_json_patch_test_a_422(api: ApiServer) -> None:
    cms = api.registry.require("", "v1", "configmaps")
    created = api.store.create(cms, "default", {"metadata": {"name": "cm"}, "data": {"v": "0"}})
    url = f"{api.url}/api/v1/namespaces/default/configmaps/cm"
    async with aiohttp.ClientSession() as session:
        async with session.patch(
            url, json={"data": {"v": "1"}}, headers={"Content-Type": "application/merge-patch+json"}
        ) as response:
            assert response.status == 200
        stale = {**created, "data": {"v": "2"}}
        async with session.put(url, json=stale) as response:
            assert response.status == 409
            assert (await response.json())["reason"] == "Conflict"
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/data/v", "value": "3"},
        ]
        async with session.patch(
            url, data=json.dumps(ops), headers={"Content-Type": "application/json-patch+json"}
        ) as response:
            assert response.status == 422
        async with session.patch(
            url, json={"data": {"v": None}}, headers={"Content-Type": "application/merge-patch+json"}
        ) as response:
            assert (await response.json()).get("data", {}) == {}  # merge-patch null deletes the key


async def test_server_side_apply_creates_then_merges(api: ApiServer) -> None:
    url = f"{api.url}/api/v1/namespaces/default/configmaps/applied?fieldManager=thermostat"
    headers = {"Content-Type": "application/apply-patch+yaml"}
    async with aiohttp.ClientSession() as session:
        first = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied}\ndata: {a: '1'}\n"
        async with session.patch(url, data=first, headers=headers) as response:
            assert response.status == 201
        second = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied}\ndata: {b: '2'}\n"
        async with session.patch(url, data=second, headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["data"] == {"a": "1", "b": "2"}
