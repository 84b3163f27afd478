"""The router file: its schedule's contracts (monotone, exact at T = 1) and its hash."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from thermostat_runtime.routing import NeuronRouter, clamp_temperature, load_router, save_router

pytestmark = pytest.mark.fast


def _router(sparsity_at_min: float = 0.6) -> NeuronRouter:
    levels = np.linspace(0, 0.98, 50)
    quantiles = np.tile(np.linspace(0.0, 2.0, 50), (3, 4, 1))
    t_grid = np.array([0.05, 0.5, 1.0])
    sparsity = np.zeros((3, 3, 4))
    sparsity[0], sparsity[1] = sparsity_at_min, sparsity_at_min / 2
    return NeuronRouter(levels, quantiles, t_grid, sparsity, {"variant": "test"})


def test_thresholds_fall_strictly_as_temperature_rises_and_vanish_at_one() -> None:
    router = _router()
    temps = [0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99]
    theta = [float(router.thresholds(t).mean()) for t in temps]
    assert all(a > b for a, b in itertools.pairwise(theta))
    assert bool((router.thresholds(1.0) < 0).all())


def test_a_schedule_that_breaks_the_contracts_is_refused() -> None:
    router = _router()
    with pytest.raises(ValueError, match="must not increase"):
        NeuronRouter(router.levels, router.quantiles, router.t_grid, router.sparsity[::-1].copy(), {})
    with pytest.raises(ValueError, match="t_grid"):
        NeuronRouter(router.levels, router.quantiles, np.array([0.0, 0.5, 1.0]), router.sparsity, {})


def test_router_file_round_trips_and_its_hash_names_the_content(tmp_path: Path) -> None:
    digest = save_router(_router(), tmp_path / "a")
    loaded, again = load_router(tmp_path / "a")
    assert again == digest
    assert np.allclose(loaded.sparsity_at(0.3), _router().sparsity_at(0.3))
    assert save_router(_router(0.5), tmp_path / "b") != digest
    payload = json.loads((tmp_path / "a" / "router.json").read_text())
    payload["format"] = "layer-routers"
    (tmp_path / "a" / "router.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="recalibrate"):
        load_router(tmp_path / "a")


def test_out_of_range_temperatures_are_clamped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert clamp_temperature(0.01, 0.2) == 0.2
        assert clamp_temperature(3.0, 0.2) == 1.0
        assert clamp_temperature(float("nan"), 0.2) == 1.0
    assert len(caplog.records) == 3
    assert clamp_temperature(0.7, 0.2) == 0.7
