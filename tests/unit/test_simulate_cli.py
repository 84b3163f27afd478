"""`thermostat simulate` as a user runs it: a small trace, every controller, JSON out; bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "benchmarks" / "chat-azure.yaml"
FIELDS = {
    "slo_attainment_requests",
    "slo_attainment_windows",
    "requests_shed",
    "energy_kwh",
    "energy_j_per_request",
    "quality_loss_mean",
    "budget_violation_s",
    "replica_changes",
    "temperature_changes",
}


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("operator", "runtime", "tools"))}
    command = [sys.executable, "-m", "thermostat", "simulate", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)


def write_trace(path: Path, seconds: int = 240) -> None:
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i in range(seconds * 2):
        second = i / 2
        rows.append(
            f"2023-11-16 18:{int(second // 60):02d}:{second % 60:09.6f}0,{300 + 7 * (i % 50)},{40 + 3 * (i % 30)}"
        )
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_simulate_writes_every_controller_with_its_fields(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    write_trace(trace)
    out = tmp_path / "result.json"
    result = simulate(
        "--trace", str(trace), "--spec", str(SPEC), "--json", str(out), "--plots", str(tmp_path / "plots")
    )
    assert result.returncode == 0, result.stderr
    assert "sha256" in result.stdout
    data = json.loads(out.read_text())
    names = {"thermostat", "hpa", "hpa-tuned", "keda", "static", "temperature-only", "oracle"}
    assert names <= set(data)
    for name in names:
        assert set(data[name]) >= FIELDS
    assert len(data["_run"]["profile_sha256"]) == 64
    assert (tmp_path / "plots" / "thermostat.png").exists()


@pytest.mark.fast
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trace", "/nonexistent.csv"], "cannot read trace"),
        (["--trace", "synthetic", "--controller", "pid"], "unknown controller"),
        (["--trace", "synthetic", "--profile", "/nonexistent.json"], "cannot read profile"),
    ],
)
def test_bad_input_exits_2_with_a_message(args: list[str], message: str) -> None:
    result = simulate(*args, "--spec", str(SPEC))
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.fast
def test_a_trace_without_the_azure_columns_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text("time,tokens\n1,2\n", encoding="utf-8")
    result = simulate("--trace", str(trace), "--spec", str(SPEC))
    assert result.returncode == 2
    assert "missing column" in result.stderr
