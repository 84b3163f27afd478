"""Closed-form fitting: the adapter recovers a low-rank linear MLP, the router skips the cheap rows."""

from __future__ import annotations

import pytest
import torch

from thermostat_runtime.router_fit import fit_adapter, fit_layer
from thermostat_runtime.routing import RouterConfig, Routers, logit_temperature

pytestmark = pytest.mark.fast


def test_adapter_recovers_a_low_rank_linear_map() -> None:
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(2000, 16, generator=generator, dtype=torch.float64)
    true = torch.randn(16, 2, generator=generator, dtype=torch.float64) @ torch.randn(
        2, 16, generator=generator, dtype=torch.float64
    )
    y = h @ true + 0.5
    down, up, bias = fit_adapter(h, y, rank=2, ridge=1e-9)
    assert torch.allclose(h @ down @ up + bias, y, atol=1e-5)


def test_router_skips_the_rows_the_adapter_predicts_well_in_the_set_share() -> None:
    generator = torch.Generator().manual_seed(1)
    h = torch.randn(4000, 8, generator=generator, dtype=torch.float64)
    # The MLP is linear except for a bump where h[:, 0] is large: those rows must run.
    y = h @ torch.eye(8, dtype=torch.float64) + torch.relu(h[:, :1] - 0.5) * 4.0
    routers = Routers(RouterConfig(layers=[0], d_model=8, adapter_rank=8))
    with torch.no_grad():
        fit_layer(routers, 0, h, y, skip_at_half=0.3, spread=0.5)
    scores = routers.score(0, h.float()).double()
    run_at_half = scores + logit_temperature(0.5) > 0
    assert abs(1 - float(run_at_half.double().mean()) - 0.3) < 0.05
    assert float(h[run_at_half, 0].mean()) > float(h[~run_at_half, 0].mean())
    runs = [float((scores + logit_temperature(t) > 0).double().mean()) for t in (0.1, 0.5, 0.9)]
    assert runs == sorted(runs)
