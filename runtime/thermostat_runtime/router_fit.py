"""Closed-form router and skip-adapter fitting: a cheap start for distillation (forward passes only).

Per routed layer, over training tokens past the attention sinks, with ``h`` the MLP input and ``y`` its
output:
- the skip adapter is the rank-r reduced-rank ridge regression of ``y`` on ``h`` (the best low-rank
  linear stand-in for the MLP);
- the router is a ridge regression of ``log ||y - adapter(h)||²`` (the local damage of skipping) on
  ``h``; its prediction is standardised per layer and mapped to a score
  ``s = (z - z_skip) / spread`` so that at T = 0.5 the MLP is skipped where the predicted damage is
  in the lowest ``skip_at_half`` quantile, and every T shifts that threshold by ``spread × logit T``.
Ranking tokens by local damage is a proxy for their effect on the output; distillation then refines it.
"""

from __future__ import annotations

from statistics import NormalDist

import torch

from thermostat_runtime.model import RoutedLlama
from thermostat_runtime.routing import ALWAYS_RUN_POSITIONS, Routers


@torch.no_grad()
def collect_mlp_io(
    model: RoutedLlama, ids: torch.Tensor, layers: list[int]
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's MLP inputs and outputs [N, d] for the rows past the sinks (in batches of chunks)."""
    found: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {layer: ([], []) for layer in layers}

    def record(layer: int, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if layer in found:
            found[layer][0].append(h[:, ALWAYS_RUN_POSITIONS:].reshape(-1, h.shape[-1]))
            found[layer][1].append(out[:, ALWAYS_RUN_POSITIONS:].reshape(-1, out.shape[-1]))
        return out

    for batch in torch.split(ids, 4):
        model.forward_dense(batch, record)
    return {layer: (torch.cat(hs).double(), torch.cat(ys).double()) for layer, (hs, ys) in found.items()}


def _ridge(x: torch.Tensor, y: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [d, k] and bias [k] of the ridge regression y ≈ x W + b."""
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc = x - x_mean
    gram = xc.T @ xc + ridge * x.shape[0] * torch.eye(x.shape[1], dtype=x.dtype)
    weights = torch.linalg.solve(gram, xc.T @ (y - y_mean))
    return weights, y_mean - x_mean @ weights


def fit_adapter(
    h: torch.Tensor, y: torch.Tensor, rank: int, ridge: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(down [d, r], up [r, d], bias [d]) of the reduced-rank regression of y on h."""
    weights, bias = _ridge(h, y, ridge)
    fitted = (h - h.mean(0)) @ weights
    _, _, vh = torch.linalg.svd(fitted, full_matrices=False)
    basis = vh[:rank].T
    return weights @ basis, basis.T, bias


def fit_layer(
    routers: Routers, slot: int, h: torch.Tensor, y: torch.Tensor, *, skip_at_half: float, spread: float
) -> None:
    """Set one routed layer's adapter and router from its MLP inputs and outputs."""
    down, up, bias = fit_adapter(h, y, routers.config.adapter_rank)
    damage = ((y - (h @ down @ up + bias)) ** 2).sum(-1).clamp_min(1e-12).log()
    w, b = _ridge(h, damage[:, None], 1e-2)
    predicted = h @ w[:, 0] + b[0]
    mean, std = predicted.mean(), predicted.std().clamp_min(1e-6)
    z_skip = NormalDist().inv_cdf(skip_at_half)
    # s = ((h·w + b - mean)/std - z_skip) / spread: the MLP runs where the predicted damage is high.
    routers.weight[slot] = (w[:, 0] / (std * spread)).float()
    routers.bias[slot] = float(((b[0] - mean) / std - z_skip) / spread)
    routers.adapter_down[slot] = down.float()
    routers.adapter_up[slot] = up.float()
    routers.adapter_bias[slot] = bias.float()


@torch.no_grad()
def fit_routers(
    model: RoutedLlama,
    routers: Routers,
    ids: torch.Tensor,
    *,
    skip_at_half: float = 0.15,
    spread: float = 0.5,
) -> None:
    """Fit every routed layer of ``routers`` in place from forward passes over ``ids``."""
    data = collect_mlp_io(model, ids, routers.config.layers)
    for layer, (h, y) in data.items():
        fit_layer(routers, routers.slot[layer], h, y, skip_at_half=skip_at_half, spread=spread)
