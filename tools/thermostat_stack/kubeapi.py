"""A small asyncio client of the Kubernetes REST API, for the stack's own reads and writes.

The stack applies its RoutedModel and follows its status, Deployment and Events as any client would,
over HTTP on loopback: get, create, merge-patch, delete. Errors come back as :class:`KubeApiError`
carrying the server's ``Status`` message.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

MERGE_PATCH = "application/merge-patch+json"


class KubeApiError(RuntimeError):
    """The API server refused a request: HTTP status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"API server answered {status}: {message}")
        self.status = status


class KubeApi:
    """REST calls against ``base_url`` (e.g. ``http://127.0.0.1:6443``) through one aiohttp session."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeApi:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use KubeApi as an async context manager")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        """One call; the decoded JSON reply, or :class:`KubeApiError`."""
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=30)
        async with self.session.request(
            method, self.base_url + path, data=data, headers=headers, params=params, timeout=timeout
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise KubeApiError(response.status, _status_message(text))
            return json.loads(text) if text else None

    async def get(self, path: str, **params: str) -> Any:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("POST", path, body=body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)


def _status_message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        return text[:300]
