"""The committed profile: valid against the shared JSON Schema, measured with the committed routers."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

RUNTIME = Path(__file__).resolve().parents[3] / "runtime" / "thermostat_runtime"
PROFILE = RUNTIME / "profiles" / "smollm2-135m-cpu.json"
ROUTERS = RUNTIME / "routers" / "smollm2-135m"


def _profile() -> dict[str, object]:
    assert PROFILE.is_file(), f"the committed profile is missing: {PROFILE} (thermostat-runtime profile --out ...)"
    data: dict[str, object] = json.loads(PROFILE.read_text())
    return data


@pytest.mark.fast
def test_committed_profile_validates_against_the_schema() -> None:
    schema = json.loads((RUNTIME / "schemas" / "profile.schema.json").read_text())
    profile = _profile()
    jsonschema.validate(profile, schema)
    assert profile["provenance"] == "measured"
    temps = [p["routing_temperature"] for p in profile["points"]]  # type: ignore[attr-defined]
    assert temps == sorted(temps)
    assert temps[0] == profile["t_min"]
    assert temps[-1] == 1.0


@pytest.mark.fast
def test_committed_profile_matches_the_committed_router_hash() -> None:
    import hashlib

    profile = _profile()
    recorded = json.loads((ROUTERS / "router.json").read_text())
    actual = "sha256:" + hashlib.sha256((ROUTERS / recorded["weights_file"]).read_bytes()).hexdigest()
    assert profile["router_hash"] == recorded["weights_sha256"] == actual
    assert (ROUTERS / recorded["weights_file"]).stat().st_size <= 20 * 1024 * 1024


def test_gpu_benchmark_exits_cleanly_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the benchmark would run for real")
    from thermostat_runtime.gpu_bench import main

    assert main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out
