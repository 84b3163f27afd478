"""The node agent runs a Pod as a process, reports it Ready from /readyz, caps replicas, drains, and
restarts a runtime that died."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from thermostat_stack import nodeagent
from thermostat_stack.endpoints import EndpointPool
from thermostat_stack.nodeagent import NodeAgent, Target
from thermostat_stack.podspec import RuntimeLaunch
from thermostat_stack.processes import ProcessTable

pytestmark = pytest.mark.fast

# A process standing in for the runtime in this unit test: it answers /readyz on its port, like the runtime.
READYZ_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404); self.end_headers()
    def log_message(self, *args): pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


class FakeHandle:
    """What the API server hands its Pod runner: the Pod and a way to report readiness."""

    def __init__(self, name: str) -> None:
        self.pod: dict[str, Any] = {
            "metadata": {"name": name, "namespace": "default", "labels": {"thermostat.dev/routedmodel": "chat"}},
            "spec": {
                "terminationGracePeriodSeconds": 5,
                "containers": [
                    {
                        "name": "runtime",
                        "command": ["thermostat-runtime", "serve"],
                        "ports": [{"name": "http", "containerPort": 8000}],
                    }
                ],
            },
        }
        self.reports: list[tuple[bool, str]] = []
        self.addresses: list[str] = []
        self.held: list[bool] = []

    def hold(self, held: bool = True) -> None:
        self.held.append(held)

    @property
    def namespace(self) -> str:
        return "default"

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    async def set_ready(self, ready: bool = True, *, pod_ip: str | None = None, message: str = "") -> None:
        self.reports.append((ready, message))
        if pod_ip:
            self.addresses.append(pod_ip)


def _launch(
    pod: dict[str, Any], *, port: int, kubeconfig: Path, extra_env: dict[str, str], host: str
) -> RuntimeLaunch:
    return RuntimeLaunch([sys.executable, "-c", READYZ_SERVER, host, str(port)], {}, port, "chat")


async def _until(condition: Any, timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


async def test_pods_run_as_processes_at_most_two_and_drain_when_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodeagent, "runtime_launch", _launch)
    published: list[list[Target]] = []
    pool = EndpointPool()
    agent = NodeAgent(
        ProcessTable(tmp_path), pool, tmp_path / "kc", published.append, start_delay_s=0.1, scrape_interval_s=0.05
    )
    handles = [FakeHandle(f"chat-{i}") for i in range(3)]
    tasks = [asyncio.create_task(agent.run(h)) for h in handles]
    await _until(lambda: len(pool.ready()) == 2)
    await asyncio.sleep(0.3)
    assert handles[2].reports[-1] == (
        False,
        "Unschedulable: the local node runs at most 2 runtime replicas (two cores)",
    )
    assert {t.labels["pod"] for t in published[-1]} == {"chat-0", "chat-1"}
    # Each Pod has an address of its own and serves on its template's port there, published as its podIP.
    (first,), (second,) = handles[0].addresses, handles[1].addresses
    assert first != second
    assert {t.address for t in published[-1]} == {f"{first}:8000", f"{second}:8000"}
    assert handles[0].held == [True]  # kept Terminating through its drain
    assert all(t.labels["routedmodel"] == "chat" and t.labels["namespace"] == "default" for t in published[-1])
    process = agent.running["default/chat-0"].process
    tasks[0].cancel()  # the API server cancels the runner when the Pod is deleted
    await asyncio.gather(tasks[0], return_exceptions=True)
    assert not process.alive()
    assert handles[0].held == [True, False]  # drained: the Pod may go
    assert "default/chat-0" not in {e.pod for e in pool.ready()}
    await _until(lambda: len(pool.ready()) == 2)  # the waiting Pod takes the freed slot
    assert (True, "") in handles[2].reports
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks[1:], return_exceptions=True)
    assert not agent.processes.running()
    assert published[-1] == []


async def test_a_runtime_sigkilled_leaves_the_pool_and_is_restarted_in_its_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodeagent, "runtime_launch", _launch)
    monkeypatch.setattr(nodeagent, "RESTART_BACKOFF_S", 0.1)
    published: list[list[Target]] = []
    pool = EndpointPool()
    agent = NodeAgent(
        ProcessTable(tmp_path), pool, tmp_path / "kc", published.append, start_delay_s=0.1, scrape_interval_s=0.05
    )
    handle = FakeHandle("chat-0")
    task = asyncio.create_task(agent.run(handle))
    await _until(lambda: len(pool.ready()) == 1)
    killed = agent.running["default/chat-0"].process
    killed.popen.kill()  # SIGKILL: no drain, no shutdown
    await _until(lambda: not pool.ready())  # out of the pool: no request is sent to a dead process
    await _until(lambda: len(pool.ready()) == 1)  # restarted in its Pod and Ready again
    assert agent.restarts == {"default/chat-0": 1}
    restarted = agent.running["default/chat-0"].process
    assert restarted.pid != killed.pid
    assert restarted.alive()
    assert any(not ready and "runtime exited" in message for ready, message in handle.reports)
    assert handle.reports[-1] == (True, "")
    assert handle.held == [True]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not restarted.alive()
    assert handle.held == [True, False]
