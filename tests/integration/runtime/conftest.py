"""One model per test session: loading and dequantizing SmolLM2 takes seconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from thermostat_runtime.model import RoutedLlama

TEXTS = [
    "The capital of France is Paris, a city on the Seine with many museums and old bridges.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # five, as the function adds its inputs",
    "Licensed under the Apache License, Version 2.0 (the License); you may not use this file except",
]


@pytest.fixture(scope="session")
def unrouted_model() -> RoutedLlama:
    torch = pytest.importorskip("torch")
    from thermostat_runtime.gguf_loader import ModelNotFoundError
    from thermostat_runtime.model import RoutedLlama

    torch.set_num_threads(1)  # shared cores; also the setting the batch-invariance tests assume
    try:
        return RoutedLlama.load(router_dir=None)
    except ModelNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def routed_model(unrouted_model: RoutedLlama) -> RoutedLlama:
    """The same weights with a router from a few texts' activations (uniform sparsity, 60% at T_min),
    so routing really skips channels whatever the packaged router does."""
    from thermostat_runtime.calibrate import prompt_router

    return unrouted_model.with_router(prompt_router(unrouted_model, TEXTS), "sha256:" + "0" * 64)
