"""The smoke calibration: the whole pipeline (splits, quantiles, sensitivity, greedy, selection) in CI time."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from thermostat_runtime.calibrate import CalibrationSettings, calibrate, greedy_path
from thermostat_runtime.model import RoutedLlama
from thermostat_runtime.routing import load_router, save_router

pytestmark = pytest.mark.model


def test_quick_calibration_writes_a_router_that_routes(
    unrouted_model: RoutedLlama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THERMOSTAT_CACHE_DIR", str(tmp_path / "cache"))  # really tokenize the splits
    router, rows = calibrate(unrouted_model, CalibrationSettings.quick())
    assert {r["variant"] for r in rows} == {"greedy", "uniform"}
    digest = save_router(router, tmp_path / "router")
    loaded, again = load_router(tmp_path / "router")
    assert again == digest
    routed = unrouted_model.with_router(loaded, digest)
    ids = unrouted_model.tokenizer.encode("The license grants you the right to copy and modify the work.")
    fractions = [routed.forward([routed.new_sequence(routing_temperature=t)], [ids]).executed_fraction
                 for t in (routed.t_min, 0.5, 1.0)]  # fmt: skip
    assert fractions[0] < fractions[1] < fractions[2] == 1.0


def test_greedy_spends_sparsity_where_it_costs_least_per_flop() -> None:
    settings = CalibrationSettings(max_saved=0.2)
    kl = np.ones((2, 4, 2)) * np.array([0.01, 0.04])  # every unit: KL 0.01 at s = 0.3, 0.04 at 0.6
    kl[1, 2] *= 10  # layer 1's gate/up is ten times as sensitive
    path = greedy_path(kl, np.array([1.0, 1.0, 1.0, 1.0]), settings, (0, 1, 2, 3), token_flops=8.0)
    saved, sparsity = path[-1]
    assert saved >= 0.2
    assert sparsity[1, 2] < sparsity[0, 2]
    assert all((b >= a).all() for (_, a), (_, b) in itertools.pairwise(path))
