"""The measured part of a run: drive the load with the live view, then gather what the report needs.

The load ends at its last arrival plus the replies still in flight (or at Ctrl-C, which sends
nothing more and waits for the replies). Prometheus then gets two more scrapes, so the runtimes'
request counters are final when they are compared with the driver's count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from rich.live import Live

from thermostat.api.spec import RoutedModelSpec
from thermostat_stack.capacity import Capacity
from thermostat_stack.kubeapi import KubeApi, KubeApiError
from thermostat_stack.live import render_view
from thermostat_stack.loaddriver import LoadDriver
from thermostat_stack.nodeagent import NodeAgent
from thermostat_stack.recorder import Recorder
from thermostat_stack.scenarios import OfferedLoad
from thermostat_stack.summary import RunRecord

if TYPE_CHECKING:
    from thermostat_stack.up import Stack

RUNTIME_COUNTER = "sum by (code) (max_over_time(thermostat_requests_total{{{selector}}}[{range_s}s]))"
PLAIN_STATUS_EVERY_S = 15.0


async def drive(stack: Stack, load: OfferedLoad, driver: LoadDriver, recorder: Recorder, agent: NodeAgent) -> None:
    """Send the load while recording and showing it; returns when the load is over or stopped."""
    recorder.load_start_wall = time.time()
    load_task = asyncio.create_task(driver.run(load))
    record_task = asyncio.create_task(recorder.run())
    view_task = asyncio.create_task(_show(stack, recorder, load, agent))
    stopper = asyncio.create_task(stack.stop.wait())
    try:
        await asyncio.wait({load_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not load_task.done():
            driver.stop()
        await load_task
        # Two more scrapes: the runtimes' final counters reach Prometheus before they are read.
        await asyncio.sleep(2 * agent.scrape_interval_s + 0.5)
    finally:
        for task in (record_task, view_task, stopper):
            task.cancel()
        await asyncio.gather(record_task, view_task, stopper, return_exceptions=True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        await recorder.sample(session)


async def _show(stack: Stack, recorder: Recorder, load: OfferedLoad, agent: NodeAgent) -> None:
    def notes() -> list[str]:
        return [text for _, text in agent.events]

    if stack.options.live:
        with Live(console=stack.console, refresh_per_second=2, transient=False) as live:
            while True:
                elapsed = time.time() - (recorder.load_start_wall or time.time())
                live.update(render_view(recorder, phase=load.phase_at(elapsed), notes=notes()))
                await asyncio.sleep(1.0)
    seen = 0
    last_status = 0.0
    while True:
        await asyncio.sleep(1.0)
        for decision in (d for d in recorder.decisions[seen:] if d.changed):
            stack.console.print(
                f"[{decision.t_s:5.0f}s] decision: T={decision.routing_temperature:.2f} "
                f"replicas={decision.replicas}: {decision.reason}"
            )
        seen = len(recorder.decisions)
        if recorder.samples and time.monotonic() - last_status >= PLAIN_STATUS_EVERY_S:
            last_status = time.monotonic()
            s = recorder.samples[-1]
            stack.console.print(
                f"[{s.t_s:5.0f}s] {load.phase_at(s.t_s)}: sent {s.sent} ok {s.ok} rejected "
                f"{s.rejected} failed {s.failed}; latency {s.latency_s}; replicas {s.ready_replicas}/"
                f"{s.replicas}"
            )


async def runtime_request_counts(prometheus_url: str, namespace: str, name: str, range_s: float) -> dict[str, float]:
    """The runtimes' own ``thermostat_requests_total`` over the run, by status code."""
    selector = f'namespace="{namespace}",routedmodel="{name}"'
    query = RUNTIME_COUNTER.format(selector=selector, range_s=int(range_s) + 1)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"{prometheus_url}/api/v1/query", params={"query": query}) as response,
    ):
        body = await response.json()
    return {item["metric"].get("code", ""): float(item["value"][1]) for item in body["data"]["result"]}


async def _events(kube: KubeApi, namespace: str, name: str) -> list[dict[str, Any]]:
    try:
        listing = await kube.get(f"/api/v1/namespaces/{namespace}/events")
    except (KubeApiError, aiohttp.ClientError):
        return []
    items = [e for e in listing.get("items", []) if (e.get("involvedObject") or {}).get("name") == name]
    return [
        {k: e.get(k) for k in ("type", "reason", "message", "count", "firstTimestamp", "lastTimestamp", "eventTime")}
        for e in items
    ]


async def collect_run(
    stack: Stack, kube: KubeApi, recorder: Recorder, *, load: OfferedLoad, capacity: Capacity, agent: NodeAgent
) -> RunRecord:
    """Everything the report needs, read while the stack still runs."""
    assert stack.prometheus is not None
    range_s = time.time() - (recorder.load_start_wall or time.time()) + 30
    counts: dict[str, float] = {}
    with contextlib.suppress(aiohttp.ClientError, KeyError, TimeoutError):
        counts = await runtime_request_counts(stack.prometheus.url, recorder.namespace, recorder.name, range_s)
    spec: RoutedModelSpec = recorder.spec
    return RunRecord(
        name=recorder.name,
        namespace=recorder.namespace,
        spec=spec,
        load=load,
        capacity=capacity,
        stats=recorder.driver.stats,
        samples=recorder.samples,
        decisions=recorder.decisions,
        events=await _events(kube, recorder.namespace, recorder.name),
        runtime_requests_total=sum(counts.values()) if counts else None,
        runtime_requests_by_code=counts,
        final_status=recorder.status,
        notes=[f"{time.strftime('%H:%M:%S', time.gmtime(t))} {text}" for t, text in agent.events],
    )
