"""Lifecycle pieces: process groups end for sure, taken ports are named, the pod contract is followed."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from thermostat_stack.endpoints import EndpointPool
from thermostat_stack.podspec import PodContractError, is_runtime_pod, runtime_launch
from thermostat_stack.ports import PortInUseError, claim_port, free_port, is_listening
from thermostat_stack.processes import ProcessTable

pytestmark = pytest.mark.fast


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "State:\tZ" not in status.read_text()


def test_stopping_a_process_ends_its_children_too(tmp_path: Path) -> None:
    table = ProcessTable(tmp_path)
    pid_file = tmp_path / "child.pid"
    script = (
        f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f" open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    child = table.start("sleeper", [sys.executable, "-c", script])
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    table.stop_all(grace_s=2)
    assert not child.alive()
    time.sleep(0.2)
    assert not _alive(grandchild)


def test_a_taken_port_is_refused_with_a_clear_message() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert is_listening(port)
        with pytest.raises(PortInUseError, match=f"port {port} .*already in use"):
            claim_port(port, "Prometheus")
    assert claim_port(None, "anything") > 0
    assert claim_port(free_port(), "anything") > 0


def _pod(command: list[str], *, ports: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {
        "metadata": {"name": "chat-1", "namespace": "ns", "labels": {"thermostat.dev/routedmodel": "chat"}},
        "spec": {
            "containers": [
                {
                    "name": "runtime",
                    "command": command,
                    "ports": ports if ports is not None else [{"name": "http", "containerPort": 8000}],
                    "env": [
                        {"name": "THERMOSTAT_ROUTING_CONFIGMAP", "value": "chat-routing"},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    ],
                }
            ]
        },
    }


def test_the_pod_template_contract_becomes_a_loopback_process_with_one_thread(tmp_path: Path) -> None:
    command = ["thermostat-runtime", "serve", "--host", "0.0.0.0", "--port", "8000", "--served-model-name", "m"]
    launch = runtime_launch(_pod(command), port=4321, kubeconfig=tmp_path / "kc", extra_env={})
    assert launch.argv[:3] == [sys.executable, "-m", "thermostat_runtime"]
    args = launch.argv[3:]
    assert args[0] == "serve"
    assert "0.0.0.0" not in args
    assert "8000" not in args
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert args[args.index("--port") + 1] == "4321"
    assert args[args.index("--threads") + 1] == "1"
    assert args[args.index("--max-batch") + 1] == "1"
    assert launch.env["THERMOSTAT_ROUTING_CONFIGMAP"] == "chat-routing"
    assert launch.env["POD_NAMESPACE"] == "ns"
    assert launch.env["OMP_NUM_THREADS"] == "1"
    assert launch.env["KUBECONFIG"] == str(tmp_path / "kc")
    assert launch.routedmodel == "chat"


def test_pods_outside_the_contract_are_recognised_or_refused(tmp_path: Path) -> None:
    assert not is_runtime_pod(_pod(["nginx"]))
    with pytest.raises(PodContractError, match="named `http`"):
        runtime_launch(_pod(["thermostat-runtime", "serve"], ports=[]), port=1, kubeconfig=tmp_path, extra_env={})


def test_the_endpoint_pool_spreads_requests_and_stops_sending_to_a_removed_pod() -> None:
    pool = EndpointPool()
    pool.add("a", "http://a")
    pool.add("b", "http://b")
    picked = [pool.pick() for _ in range(4)]
    assert {e.pod for e in picked if e} == {"a", "b"}
    pool.remove("a")
    assert {pool.pick().pod for _ in range(3)} == {"b"}  # type: ignore[union-attr]
    pool.remove("b")
    assert pool.pick() is None


def test_a_missing_prometheus_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from thermostat_stack.setup import SetupError, UpOptions
    from thermostat_stack.up import _preflight

    monkeypatch.setenv("THERMOSTAT_PROMETHEUS_BINARY", "/nonexistent/prometheus")
    with pytest.raises(SetupError, match="apt-get install prometheus"):
        _preflight(UpOptions())
