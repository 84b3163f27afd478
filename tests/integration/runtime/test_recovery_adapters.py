"""The recovery fine-tune's adapters: no effect where nothing is skipped, a real one where it is, and a
resumed training run lands where an uninterrupted one does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from thermostat_runtime import recovery
from thermostat_runtime.model import RoutedLlama

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _ids(model: RoutedLlama) -> torch.Tensor:
    text = "The history of the Roman empire begins with a small town on the river Tiber, whose people"
    return torch.tensor([model.tokenizer.encode(text)[:16]])


def test_adapters_leave_the_exact_path_bit_identical_and_correct_only_skipped_channels(
    routed_model: RoutedLlama,
) -> None:
    assert routed_model.router is not None
    adapters = recovery.svd_init(routed_model, rank=4)
    ids = _ids(routed_model)
    with torch.no_grad():
        exact = routed_model.forward_dense(ids)
        keep_all = torch.full((routed_model.config.n_layers, 4), -1.0)
        assert torch.equal(recovery.adapted_logits(routed_model, ids, keep_all, adapters), exact)
        theta = routed_model.router.thresholds(0.5)
        plain = recovery.adapted_logits(routed_model, ids, theta, None)
        corrected = recovery.adapted_logits(routed_model, ids, theta, adapters)
    assert torch.equal(plain[:, :4], corrected[:, :4])  # the sinks skip nothing: no correction there
    assert not torch.equal(plain[:, 4:], corrected[:, 4:])


def test_a_resumed_training_run_matches_an_uninterrupted_one(routed_model: RoutedLlama, tmp_path: Path) -> None:
    assert routed_model.router is not None
    chunks = np.asarray([_ids(routed_model)[0].tolist()] * 2, dtype=np.int64)

    def run(steps: int, checkpoint: Path) -> recovery.Adapters:
        settings = recovery.TrainSettings(steps=steps, batch=1, seq_len=16, checkpoint_every=1, lr=1e-3)
        return recovery.train(routed_model, routed_model.router, chunks, settings, checkpoint)  # type: ignore[arg-type]

    straight = run(2, tmp_path / "straight.pt")
    run(1, tmp_path / "resumed.pt")
    resumed = run(2, tmp_path / "resumed.pt")
    assert torch.load(tmp_path / "resumed.pt", weights_only=False)["step"] == 2
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    initial = recovery.svd_init(routed_model, rank=4)
    assert any(not torch.equal(a, b) for a, b in zip(straight.parameters(), initial.parameters(), strict=True))
