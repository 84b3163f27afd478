"""A smoke training run: resumable, records the tokens trained, and lowers the distillation loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thermostat_runtime.corpus import token_chunks
from thermostat_runtime.model import RoutedLlama
from thermostat_runtime.routing import Routers, load_routers
from thermostat_runtime.train import TrainConfig, distillation_loss, initial_routers, train_routers

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _loss(model: RoutedLlama, routers: Routers, ids: torch.Tensor) -> float:
    losses = [distillation_loss(model, routers, ids, temperature=t, seed=0, compute_weight=0.5) for t in (0.3, 0.6)]
    return sum(float(loss.detach()) for loss in losses)


def test_smoke_training_resumes_and_lowers_the_distillation_loss(unrouted_model: RoutedLlama, tmp_path: Path) -> None:
    config = TrainConfig(
        out_dir=str(tmp_path),
        steps=4,
        batch=2,
        seq_len=48,
        calib_chunks=2,
        n_routed=8,
        adapter_rank=4,
        lr=2e-2,
        checkpoint_every=2,
        t_low=0.3,
        t_high=0.6,
        gate_noise=1.0,  # sampled gates: an unbiased straight-through signal for a short, fast run
    )
    chunks = torch.from_numpy(
        token_chunks(unrouted_model.tokenizer.encode, held_out=False, seq_len=48, separator=0, max_chunks=10)
    )
    batch = chunks[2:4]
    before = _loss(unrouted_model, initial_routers(unrouted_model, config, chunks[:2]), batch)
    train_routers(config, unrouted_model)
    assert (tmp_path / "checkpoint.pt").is_file()
    config.steps = 8
    train_routers(config, unrouted_model)  # resumes at step 4
    routers, _ = load_routers(tmp_path)
    assert routers.config.tokens_trained == 8 * 2 * 48
    assert routers.config.extra["steps_done"] == 8
    assert _loss(unrouted_model, routers, batch) < before
