"""The whole local stack, end to end: `thermostat up` runs a short burst and everything ends cleanly.

A burst scenario runs against real runtime replicas, a real Prometheus, the operator and the emulated
API server. The assertions are made on the RoutedModel's decisions (one per control period, read from
status by the stack's recorder) and its Events, counted in decisions and not in seconds, and on the
report's request accounting; after the command returns, no process it started is alive and none of
its ports listens.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Steady 60 s (one SLO window and the scale-down window), then a burst and a recovery of 84 s and 56
# s: time for the excursion, a replica's start and the temperature's return (docs/control-law.md).
LOAD_SECONDS = 230
EXCURSION_AT = 0.9
EXCURSION_COMPLETIONS = 10
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.model]


def _env() -> dict[str, str]:
    tree = [str(ROOT / d) for d in ("operator", "runtime", "tools")]
    path = os.pathsep.join([*tree, os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def _running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except OSError:
        return False


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=30
    )


@pytest.fixture(scope="module")
def burst_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `thermostat up --scenario burst` run; kubectl is tried while it runs."""
    from thermostat_runtime.gguf_loader import ModelNotFoundError, resolve_model_path

    try:
        resolve_model_path(None)
    except ModelNotFoundError as error:
        pytest.skip(str(error))
    out = tmp_path_factory.mktemp("stack")
    # The report is kept where a person looks after a failure (reports/ is git-ignored).
    report, kubeconfig = ROOT / "reports" / "e2e-burst", out / "kubeconfig"
    shutil.rmtree(report, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "thermostat",
        "up",
        "--scenario",
        "burst",
        "--duration",
        str(LOAD_SECONDS),
        "--no-live",
        "--report",
        str(report),
        "--kubeconfig",
        str(kubeconfig),
        "--start-delay",
        "5",
        "--capacity-requests",
        "8",
    ]
    with (out / "up.log").open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        kubectl: dict[str, str] = {}
        deadline = time.monotonic() + 600
        while process.poll() is None and time.monotonic() < deadline:
            if "get" not in kubectl and kubeconfig.exists():
                result = _kubectl(kubeconfig, "get", "rm")
                if result.returncode == 0 and "chat" in result.stdout:
                    kubectl["get"] = result.stdout
                    kubectl["apply"] = _kubectl(
                        kubeconfig, "apply", "-f", str(ROOT / "examples" / "local-stack.yaml")
                    ).stdout
                    kubectl["describe"] = _kubectl(kubeconfig, "describe", "rm", "chat").stdout
            time.sleep(2)
        if process.poll() is None:
            process.terminate()
        returncode = process.wait(timeout=120)
    text = (out / "up.log").read_text()
    if report.is_dir():
        (report / "up.log").write_text(text)
    assert returncode == 0, text[-4000:]
    run = json.loads((report / "run.json").read_text())
    return {
        "summary": json.loads((report / "summary.json").read_text()),
        "run": run,
        "kubectl": kubectl,
        "lifecycle": json.loads((report / "lifecycle.json").read_text()),
        "report": report,
        "log": text,
    }


def _decisions(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result["run"]["decisions"])


def _steady_operating_point(result: dict[str, Any]) -> float:
    """The operating temperature the law reported just before the burst."""
    burst = result["summary"]["burst_start_s"]
    before = [d for d in _decisions(result) if d["t_s"] < burst and d["operating_temperature"] is not None]
    assert before, "no decision reported an operating point before the burst"
    return float(before[-1]["operating_temperature"])


def _excursion(result: dict[str, Any]) -> int:
    """Index of the first decision after the burst's start that observed an excursion as the law defines
    one (docs/control-law.md): the quantile over 0.9 of the target, on at least 10 completions in the
    window (read as the observed rate times the window; a thinner window moves nothing, by design)."""
    summary = result["summary"]
    burst, target, window = summary["burst_start_s"], summary["slo_target_s"], summary["slo_window_s"]
    decisions = _decisions(result)

    def excursion(d: dict[str, Any]) -> bool:
        latency, rate = d["observed_latency_s"], d["observed_request_rate"] or 0.0
        return latency is not None and latency > EXCURSION_AT * target and rate * window >= EXCURSION_COMPLETIONS

    over = [i for i, d in enumerate(decisions) if d["t_s"] >= burst and excursion(d)]
    assert over, "the burst never showed in the observed quantile: it did not exceed one replica's capacity"
    return over[0]


def _first_scale_up(result: dict[str, Any]) -> int:
    decisions = _decisions(result)
    burst = result["summary"]["burst_start_s"]
    return next(
        i
        for i in range(1, len(decisions))
        if decisions[i]["t_s"] >= burst and decisions[i]["replicas"] > decisions[i - 1]["replicas"]
    )


def test_kubectl_gets_describes_and_applies_while_the_stack_runs(burst_run: dict[str, Any]) -> None:
    kubectl = burst_run["kubectl"]
    assert "REPLICAS" in kubectl["get"]
    assert "TEMPERATURE" in kubectl["get"]
    assert "routedmodel.thermostat.dev/chat" in kubectl["apply"]
    assert "Events:" in kubectl["describe"]


def test_the_steady_phase_runs_at_the_operating_point_on_one_replica(burst_run: dict[str, Any]) -> None:
    """The steady phase reaches the operating point on one replica (the law stays exact until a window
    holds enough completions to learn from), and from then until the burst every decision keeps one
    replica there, unless that decision saw the SLO missed."""
    summary = burst_run["summary"]
    burst, target = summary["burst_start_s"], summary["slo_target_s"]
    steady = [d for d in _decisions(burst_run) if d["t_s"] < burst]
    reached = next(
        (i for i, d in enumerate(steady) if abs(d["routing_temperature"] - (d["operating_temperature"] or 0)) < 0.005),
        None,
    )
    assert reached is not None, "the steady phase never reached the operating point"
    for d in steady[reached:]:
        if d["observed_latency_s"] is not None and d["observed_latency_s"] > target:
            continue  # the SLO actually missed: the law may act
        assert d["replicas"] == 1, d
        assert d["routing_temperature"] == pytest.approx(d["operating_temperature"], abs=0.005), d


def test_the_burst_lowers_the_temperature_within_two_periods_of_the_observed_excursion(
    burst_run: dict[str, Any],
) -> None:
    decisions, seen = _decisions(burst_run), _excursion(burst_run)
    operating = _steady_operating_point(burst_run)
    assert min(d["routing_temperature"] for d in decisions[seen : seen + 3]) < operating - 0.005
    assert any(e["reason"] == "RoutingTemperatureChanged" for e in burst_run["run"]["events"])


def test_a_replica_follows_and_latency_comes_back_under_the_slo(burst_run: dict[str, Any]) -> None:
    decisions, scale_up = _decisions(burst_run), _first_scale_up(burst_run)
    assert scale_up >= _excursion(burst_run) - 2  # the burst's replica, not a steady-phase one
    target = burst_run["summary"]["slo_target_s"]
    later = [d["observed_latency_s"] for d in decisions[scale_up + 1 :] if d["observed_latency_s"] is not None]
    assert any(latency <= target for latency in later)
    assert any(e["reason"] == "ReplicasChanged" for e in burst_run["run"]["events"])
    assert burst_run["summary"]["replicas_max"] == 2


def test_the_temperature_returns_to_the_operating_point_after_the_second_replica_is_ready(
    burst_run: dict[str, Any],
) -> None:
    decisions = _decisions(burst_run)
    scale_up = _first_scale_up(burst_run)
    ready = next(i for i in range(scale_up, len(decisions)) if (decisions[i]["ready_replicas"] or 0) >= 2)
    operating = _steady_operating_point(burst_run)
    # The operating point may move as shadow quality corrects the profile: the lower of the two counts.
    back = [
        d for d in decisions[ready:] if d["routing_temperature"] >= min(operating, d["operating_temperature"]) - 0.005
    ]
    assert back, [(d["t_s"], d["routing_temperature"], d["ready_replicas"]) for d in decisions[ready:]]


def test_the_report_carries_the_time_averaged_quality_loss_and_the_operating_point(
    burst_run: dict[str, Any],
) -> None:
    summary = burst_run["summary"]
    assert summary["quality_loss_percent_mean"] is not None
    assert 0.0 <= summary["quality_loss_percent_mean"] <= 2.0
    assert 0.0 < summary["operating_temperature"] <= 1.0
    text = (burst_run["report"] / "summary.md").read_text()
    assert f"met in {summary['slo_windows_met']} of {summary['slo_windows']} windows" in text
    assert summary["slo_windows_met"] == round(summary["slo_attainment_windows"] * summary["slo_windows"])


def test_routing_buys_capacity(burst_run: dict[str, Any]) -> None:
    """Measured in alternating rounds on one replica: the median paired ratio of T_min over T = 1."""
    summary = burst_run["summary"]
    spread = (summary["capacity_gain_min"], summary["capacity_gain"], summary["capacity_gain_max"])
    assert summary["capacity_pairs"] == 8
    assert summary["capacity_rps_tmin"] > summary["capacity_rps_exact"], f"gain min/median/max {spread}"


def test_every_request_is_counted_once_and_none_failed(burst_run: dict[str, Any]) -> None:
    summary = burst_run["summary"]
    assert summary["requests_total"] > 0
    assert (
        summary["requests_total"] == summary["requests_ok"] + summary["requests_rejected"] + summary["requests_failed"]
    )
    assert summary["requests_failed"] == 0, summary["requests_failure_reasons"]
    assert summary["runtime_requests_total"] == summary["requests_total"]


def test_nothing_is_left_behind_and_the_report_is_kept(burst_run: dict[str, Any]) -> None:
    lifecycle = burst_run["lifecycle"]
    assert lifecycle["pids"]
    assert not [pid for pid in lifecycle["pids"] if _running(pid)]
    assert not [port for port in lifecycle["ports"] if _listening(port)]
    assert lifecycle["addresses"]  # the runtime pods' own addresses (127.0.0.N:port)
    assert not [a for a in lifecycle["addresses"] if _listening(int(a.rsplit(":", 1)[1]), a.rsplit(":", 1)[0])]
    assert not Path(lifecycle["workdir"]).exists()
    assert not Path(lifecycle["kubeconfig"]).exists()
    assert (burst_run["report"] / "overview.png").is_file()


def test_a_taken_port_gets_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "thermostat",
                "up",
                "--api-port",
                str(port),
                "--no-live",
                "--report",
                str(tmp_path / "r"),
            ],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2
    assert f"port {port}" in result.stdout + result.stderr
    assert "already in use" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
