"""Fault: a runtime process SIGKILLed mid-request. Only the requests it had in flight are lost, counted;
the endpoint leaves the pool at once (no request is sent to the dead process) and the node agent
restarts the runtime in its Pod, which serves again.

The local stack's node agent, endpoint pool and load driver run as in ``thermostat-stack up``; the
runtime is a stand-in process (``/readyz``, and ``/v1/completions`` answering after a fixed service
time), so the figure is about the stack's handling of the death, not the model. What the control law
makes of the gap is ``test_fault_prometheus.py``'s second test (a pod restarted after a gap). The figures are printed
(``pytest -s``) and recorded in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from thermostat_stack import nodeagent
from thermostat_stack.endpoints import Endpoint, EndpointPool
from thermostat_stack.loaddriver import LoadDriver
from thermostat_stack.nodeagent import NodeAgent
from thermostat_stack.podspec import RuntimeLaunch
from thermostat_stack.processes import ProcessTable
from thermostat_stack.scenarios import Arrival, OfferedLoad

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

SERVICE_S, RATE, DURATION_S = 0.8, 10.0, 8.0
# The runtime's HTTP surface the load driver uses, each request taking SERVICE_S (threads: concurrent).
RUNTIME = f"""
import http.server, json, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404); self.end_headers()
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep({SERVICE_S})
        body = json.dumps({{"usage": {{"completion_tokens": 1}}}}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


class Handle:
    """The API server's side of a Pod, as the node agent sees it: the Pod and its readiness reports."""

    def __init__(self, name: str) -> None:
        container = {"name": "runtime", "command": ["thermostat-runtime", "serve"],
                     "ports": [{"name": "http", "containerPort": 8000}]}  # fmt: skip
        self.pod: dict[str, Any] = {
            "metadata": {"name": name, "namespace": "default", "labels": {"thermostat.dev/routedmodel": "chat"}},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
        }
        self.reports: list[tuple[float, bool, str]] = []

    namespace = "default"

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    def hold(self, held: bool = True) -> None:
        pass

    async def set_ready(self, ready: bool = True, *, pod_ip: str | None = None, message: str = "") -> None:
        self.reports.append((time.monotonic(), ready, message))


def launch(pod: dict[str, Any], *, port: int, kubeconfig: Path, extra_env: dict[str, str], host: str) -> RuntimeLaunch:
    return RuntimeLaunch([sys.executable, "-c", RUNTIME, host, str(port)], {}, port, "chat")


async def until(condition: Any, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def just_sent_to(endpoint: Endpoint, timeout_s: float = 10) -> None:
    """Return right after a new request went to ``endpoint`` (its in-flight count rose)."""
    async with asyncio.timeout(timeout_s):
        before = endpoint.in_flight
        while endpoint.in_flight <= before:
            before = min(before, endpoint.in_flight)
            await asyncio.sleep(0.001)


def steady(rate: float, duration_s: float) -> OfferedLoad:
    arrivals = tuple(Arrival(i / rate, 8, 1) for i in range(int(rate * duration_s)))
    return OfferedLoad("steady", arrivals, duration_s, None, f"{rate} req/s for {duration_s} s")


async def test_a_runtime_sigkilled_mid_request_loses_only_its_in_flight_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodeagent, "runtime_launch", launch)
    pool = EndpointPool()
    agent = NodeAgent(ProcessTable(tmp_path), pool, tmp_path / "kc", lambda _: None, start_delay_s=0.1)
    handles = [Handle(f"chat-{i}") for i in range(2)]
    pods = [asyncio.create_task(agent.run(h)) for h in handles]
    driver = LoadDriver(pool)
    try:
        await until(lambda: len(pool.ready()) == 2)
        load = asyncio.create_task(driver.run(steady(RATE, DURATION_S)))
        await until(lambda: driver.stats.sent >= RATE * 2)  # two seconds in: both pods busy
        (victim,) = [e for e in pool.ready() if e.pod == "default/chat-0"]
        await just_sent_to(victim)  # so its next request is a round-robin turn away, not racing the kill
        agent.running["default/chat-0"].process.popen.kill()  # SIGKILL, mid-request
        # No await between the kill and this read: no request starts or ends in between.
        in_flight_at_kill, killed_at, killed_s = victim.in_flight, time.monotonic(), driver.elapsed_s()
        await until(lambda: agent.restarts.get("default/chat-0") == 1 and len(pool.ready()) == 2)
        recovered_s = time.monotonic() - killed_at
        await load
    finally:
        for pod in pods:
            pod.cancel()
        await asyncio.gather(*pods, return_exceptions=True)
    stats = driver.stats
    lost_in_flight = [r for r in stats.records if r.outcome == "failed" and r.sent_s < killed_s]
    lost_after = [r for r in stats.records if r.outcome == "failed" and r.sent_s >= killed_s]
    print(f"\nFAULT runtime-sigkilled-mid-request: sent={stats.sent} ok={stats.ok} lost={stats.failed} "
          f"(in flight on the killed pod at the kill: {in_flight_at_kill}; sent after the kill and lost: "
          f"{len(lost_after)}) restarts={agent.restarts} time_to_recover_s={recovered_s:.1f} "
          f"reasons={dict(stats.failure_reasons)}")  # fmt: skip
    assert in_flight_at_kill > 0  # the kill was mid-request
    assert len(lost_in_flight) == in_flight_at_kill
    assert all(r.pod == "default/chat-0" for r in lost_in_flight)
    assert not lost_after, lost_after  # the dead endpoint left the pool before the next pick
    assert stats.sent == stats.ok + stats.failed == len(steady(RATE, DURATION_S).arrivals)
