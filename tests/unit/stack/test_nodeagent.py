"""The node agent runs a Pod as a process, reports it Ready from /readyz, caps replicas, drains,
restarts a runtime that died, and projects the Pod's labels into its downward API labels file."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from thermostat_runtime.routing_config import track_from_labels
from thermostat_stack import nodeagent, podspec
from thermostat_stack.downward import DownwardFiles, format_map
from thermostat_stack.endpoints import EndpointPool
from thermostat_stack.nodeagent import NodeAgent, Target
from thermostat_stack.podspec import PodContractError, RuntimeLaunch
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


# The stand-in runtime for the labels file: /readyz, and /labels answering what its process reads at
# $THERMOSTAT_POD_LABELS_FILE now (so the test sees the file through the process's own environment).
LABELS_SERVER = """
import http.server, json, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/labels":
            path = os.environ["THERMOSTAT_POD_LABELS_FILE"]
            body = json.dumps({"path": path, "text": open(path).read()}).encode()
        else:
            body = b""
        self.send_response(200 if self.path in ("/readyz", "/labels") else 404)
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""
PODINFO = "/etc/thermostat/podinfo"


def _with_podinfo(handle: FakeHandle) -> FakeHandle:
    """The operator's template with spec.rollout: a downwardAPI volume of metadata.labels and the env naming it."""
    container = handle.pod["spec"]["containers"][0]
    container["env"] = [{"name": "THERMOSTAT_POD_LABELS_FILE", "value": f"{PODINFO}/labels"}]
    container["volumeMounts"] = [{"name": "podinfo", "mountPath": PODINFO, "readOnly": True}]
    items = [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
    handle.pod["spec"]["volumes"] = [{"name": "podinfo", "downwardAPI": {"items": items}}]
    return handle


def _labels_launch(
    pod: dict[str, Any], *, port: int, kubeconfig: Path, extra_env: dict[str, str], host: str
) -> RuntimeLaunch:
    """The real launch's environment (the template's env, as the runtime would get it), the stand-in's argv."""
    real = podspec.runtime_launch(pod, port=port, kubeconfig=kubeconfig, extra_env=extra_env, host=host)
    return RuntimeLaunch([sys.executable, "-c", LABELS_SERVER, host, str(port)], real.env, port, "chat")


def _read_labels(url: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{url}/labels", timeout=5) as response:
        answer: dict[str, str] = json.loads(response.read())
    return answer


async def test_a_pods_labels_reach_its_downward_api_file_and_a_relabel_rewrites_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodeagent, "runtime_launch", _labels_launch)
    pool = EndpointPool()
    agent = NodeAgent(ProcessTable(tmp_path / "logs"), pool, tmp_path / "kc", lambda _: None, start_delay_s=0.1,
                      scrape_interval_s=0.05, pods_dir=tmp_path / "pods", labels_sync_s=0.05)  # fmt: skip
    handle = _with_podinfo(FakeHandle("chat-0"))
    task = asyncio.create_task(agent.run(handle))
    try:
        await _until(lambda: len(pool.ready()) == 1)
        url = agent.running["default/chat-0"].url
        seen = await asyncio.to_thread(_read_labels, url)
        # The process's env names the Pod's own copy of the volume, written as the kubelet writes it.
        assert seen["path"] == str(tmp_path / "pods" / "default" / "chat-0" / "podinfo" / "labels")
        assert seen["text"] == 'thermostat.dev/routedmodel="chat"'
        assert track_from_labels(seen["text"]) == "stable"
        # The operator relabels the pod in the API (the server's handle follows the stored labels).
        handle.pod["metadata"]["labels"] = {**handle.pod["metadata"]["labels"], "thermostat.dev/track": "canary"}
        await _until(lambda: track_from_labels(Path(seen["path"]).read_text()) == "canary")
        seen = await asyncio.to_thread(_read_labels, url)  # the process reads it through its own environment
        assert seen["text"] == 'thermostat.dev/routedmodel="chat"\nthermostat.dev/track="canary"'
        assert any("downward API file labels updated" in text for _, text in agent.events)
        handle.pod["metadata"]["labels"]["thermostat.dev/track"] = "stable"  # a rollback relabels it stable
        await _until(lambda: track_from_labels(Path(seen["path"]).read_text()) == "stable")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not (tmp_path / "pods" / "default" / "chat-0").exists()  # the volume goes with the Pod


def test_the_downward_api_files_follow_the_kubelets_format_and_contract(tmp_path: Path) -> None:
    # Go's %q quoting, sorted keys, no newline after the last line (fieldpath.FormatMap).
    assert format_map({"b": 'say "hi"', "a": "1"}) == 'a="1"\nb="say \\"hi\\""'
    pod = _with_podinfo(FakeHandle("chat-0")).pod
    files = DownwardFiles.for_pod(pod, tmp_path)
    assert files.env({"THERMOSTAT_POD_LABELS_FILE": f"{PODINFO}/labels", "OTHER": "/etc/thermostat/x"}) == {
        "THERMOSTAT_POD_LABELS_FILE": str(tmp_path / "podinfo" / "labels"),
        "OTHER": "/etc/thermostat/x",
    }
    assert files.write(pod) == [tmp_path / "podinfo" / "labels"]
    assert files.write(pod) == []  # unchanged: not rewritten
    no_volume = FakeHandle("chat-1").pod
    assert DownwardFiles.for_pod(no_volume, tmp_path).volumes == []
    pod["spec"]["volumes"][0]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] = "spec.nodeName"
    with pytest.raises(PodContractError, match=r"spec\.nodeName"):
        DownwardFiles.for_pod(pod, tmp_path)
