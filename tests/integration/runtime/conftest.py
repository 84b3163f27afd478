"""One model per test session: loading and dequantizing SmolLM2 takes seconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from thermostat_runtime.model import RoutedLlama


@pytest.fixture(scope="session")
def unrouted_model() -> RoutedLlama:
    pytest.importorskip("torch")
    from thermostat_runtime.gguf_loader import ModelNotFoundError
    from thermostat_runtime.model import RoutedLlama

    try:
        return RoutedLlama.load(router_dir=None)
    except ModelNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def routed_model(unrouted_model: RoutedLlama) -> RoutedLlama:
    """The same weights with synthetic routers on every other layer (sampled gates), so routing really
    skips rows whatever the trained routers do."""
    import torch

    from thermostat_runtime.routing import RouterConfig, Routers

    config = unrouted_model.config
    routers = Routers(
        RouterConfig(
            layers=list(range(2, config.n_layers, 2)),
            d_model=config.d_model,
            adapter_rank=4,
            gate_noise=1.0,
            t_min=0.05,
        )
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        routers.weight.copy_(torch.randn(routers.weight.shape, generator=generator) * 0.05)
        routers.bias.fill_(1.0)
    routers.requires_grad_(False)
    return unrouted_model.with_routers(routers, "sha256:" + "0" * 64)
