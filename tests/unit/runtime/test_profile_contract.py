"""The committed profile: valid against the shared JSON Schema, measured with the committed router."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import jsonschema
import pytest

RUNTIME = Path(__file__).resolve().parents[3] / "runtime" / "thermostat_runtime"
PROFILE = RUNTIME / "profiles" / "smollm2-135m-cpu.json"
ROUTER = RUNTIME / "routers" / "smollm2-135m" / "router.json"


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
    assert profile["schema_version"] == 2
    actual = "sha256:" + hashlib.sha256(ROUTER.read_bytes()).hexdigest()
    assert profile["router_hash"] == actual, "re-run `thermostat-runtime profile` after recalibrating"
    assert ROUTER.stat().st_size <= 1024 * 1024


@pytest.mark.fast
def test_committed_profile_carries_the_quality_loss_and_a_test_split_of_16k_tokens() -> None:
    import math

    profile = _profile()
    assert int(profile["test_tokens"]) >= 16_000  # type: ignore[call-overload]
    for point in profile["points"]:  # type: ignore[attr-defined]
        assert point["quality_loss_percent"] == pytest.approx(100 * math.expm1(point["kl_nats"]))
        low, high = point["quality_loss_ci95"]
        assert low <= point["quality_loss_percent"] <= high
    flops = [p["flops_fraction"] for p in profile["points"]]  # type: ignore[attr-defined]
    assert all(a < b for a, b in itertools.pairwise(flops))


def test_gpu_benchmark_exits_cleanly_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the benchmark would run for real")
    from thermostat_runtime.gpu_bench import main

    assert main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out
