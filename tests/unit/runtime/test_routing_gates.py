"""Routing gates as pure functions: the temperature scale, the counter-based uniforms, router files."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from thermostat_runtime.routing import (
    RouterConfig,
    Routers,
    clamp_temperature,
    execute_mask,
    gate_thresholds,
    gate_uniforms,
    load_routers,
    logit_temperature,
    save_routers,
)

pytestmark = pytest.mark.fast


def test_logit_temperature_is_exact_at_one_and_router_as_trained_at_half() -> None:
    assert logit_temperature(1.0) == math.inf
    assert logit_temperature(0.5) == 0.0
    assert logit_temperature(0.2) < logit_temperature(0.3) < 0


def test_out_of_range_temperatures_are_clamped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert clamp_temperature(0.01, 0.2) == 0.2
        assert clamp_temperature(3.0, 0.2) == 1.0
        assert clamp_temperature(float("nan"), 0.2) == 1.0
    assert len(caplog.records) == 3
    assert clamp_temperature(0.7, 0.2) == 0.7


def test_uniforms_are_a_pure_function_of_seed_position_layer() -> None:
    positions = np.arange(0, 1000)
    a = gate_uniforms(7, positions, 3)
    assert np.array_equal(a, gate_uniforms(7, positions, 3))
    assert np.array_equal(a[500:], gate_uniforms(7, positions[500:], 3))
    assert not np.array_equal(a, gate_uniforms(8, positions, 3))
    assert not np.array_equal(a, gate_uniforms(7, positions, 4))
    assert a.min() >= 0.0
    assert a.max() < 1.0
    assert abs(a.mean() - 0.5) < 0.05


def test_execution_rate_is_monotone_in_temperature_and_sinks_always_run() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(4000, generator=generator, dtype=torch.float64)
    positions = torch.arange(4000)
    uniforms = torch.from_numpy(gate_uniforms(1, positions.numpy(), 0))
    rates = []
    for t in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        logit_t = torch.full((4000,), logit_temperature(t), dtype=torch.float64)
        for noise in (0.0, 1.0):
            run = execute_mask(scores, logit_t, uniforms, positions, gate_noise=noise)
            assert bool(run[:4].all())
        rates.append(float(execute_mask(scores, logit_t, uniforms, positions, gate_noise=1.0).double().mean()))
    assert rates == sorted(rates)
    assert len(set(rates)) == len(rates)
    assert rates[-1] == 1.0


def test_router_files_round_trip_with_their_hash(tmp_path: Path) -> None:
    routers = Routers(RouterConfig(layers=[3, 5], d_model=16, adapter_rank=2))
    with torch.no_grad():
        routers.weight.normal_()
    digest = save_routers(routers, tmp_path)
    loaded, loaded_digest = load_routers(tmp_path)
    assert digest == loaded_digest
    assert digest.startswith("sha256:")
    assert torch.equal(loaded.weight, routers.weight)
    (tmp_path / "router.pt").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="hash"):
        load_routers(tmp_path)


def test_precomputed_thresholds_decide_like_the_sigmoid_rule() -> None:
    generator = torch.Generator().manual_seed(1)
    positions = np.arange(0, 500)
    layers = [2, 7]
    for noise in (0.0, 0.5, 1.0):
        for t in (0.1, 0.5, 0.8):
            thresholds = torch.from_numpy(gate_thresholds(3, positions, layers, logit_temperature(t), gate_noise=noise))
            for column, layer in enumerate(layers):
                scores = torch.randn(500, generator=generator, dtype=torch.float64)
                uniforms = torch.from_numpy(gate_uniforms(3, positions, layer))
                logit_t = torch.full((500,), logit_temperature(t), dtype=torch.float64)
                expected = execute_mask(scores, logit_t, uniforms, torch.from_numpy(positions), gate_noise=noise)
                assert torch.equal(scores > thresholds[:, column], expected)
