"""The Service stand-in: the ready runtime endpoints the load driver spreads requests over.

The node agent adds a pod's endpoint when its ``/readyz`` answers and removes it before draining,
as endpoints controllers and kube-proxy do in a cluster; the load driver picks endpoints round-robin
and counts the requests in flight on each, so a drain can wait until none is left.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Endpoint:
    """One ready replica: its pod, its loopback URL, and the requests in flight to it."""

    pod: str
    url: str
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def acquire(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()


class EndpointPool:
    """Ready endpoints, in the order they became ready, picked round-robin."""

    def __init__(self) -> None:
        self._ready: dict[str, Endpoint] = {}
        self._known: dict[str, Endpoint] = {}
        self._turn = 0

    def add(self, pod: str, url: str) -> Endpoint:
        endpoint = self._known.setdefault(pod, Endpoint(pod, url))
        endpoint.url = url  # a runtime restarted in its Pod may listen on another address
        self._ready[pod] = endpoint
        return endpoint

    def remove(self, pod: str) -> Endpoint | None:
        """Stop sending new requests to ``pod``; returns its endpoint (to wait for it to go idle)."""
        self._ready.pop(pod, None)
        return self._known.get(pod)

    def ready(self) -> list[Endpoint]:
        return list(self._ready.values())

    def pick(self) -> Endpoint | None:
        """The next ready endpoint, or None when no replica is ready."""
        ready = self.ready()
        if not ready:
            return None
        self._turn = (self._turn + 1) % len(ready)
        return ready[self._turn]

    def total_in_flight(self) -> int:
        return sum(endpoint.in_flight for endpoint in self._known.values())

    async def wait_idle(self) -> None:
        """Until no request is in flight to any endpoint, ready or draining."""
        for endpoint in list(self._known.values()):
            await endpoint.idle.wait()
