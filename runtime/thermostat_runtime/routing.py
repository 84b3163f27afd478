"""Routing: per-token gates that run or skip a routed layer's MLP, on the scale of DESIGN §3.

For routed layer ``l`` and a token with post-attention normalized hidden state ``h``::

    s = w_l · h + b_l                        (a linear router, one per routed layer)
    p_exec = sigmoid(s + logit(T))           (T = routing_temperature; T = 0.5 is the router as trained)
    u = 0.5 + gate_noise * (U(seed, position, l) - 0.5)
    run the MLP  <=>  u < p_exec  or  position < ALWAYS_RUN_POSITIONS

``U`` is a counter-based hash (splitmix64) of the request's seed, the token's position and the layer,
so a gate depends only on (seed, T, the request's own tokens), never on batch neighbours.
``gate_noise = 1`` samples the gate; ``gate_noise = 0`` thresholds ``p_exec`` at 1/2 (deterministic).
Expected compute is monotone in T (``logit`` is increasing); ``T = 1`` gives ``logit = +inf``, and the
model bypasses routing entirely. A skipped token gets the layer's skip path instead of the MLP: a tiny
learned adapter ``c + (h A) B`` (rank r), FlexiDepth-style, or the identity when it is zero.

This module is pure torch + numpy; it never loads the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

ALWAYS_RUN_POSITIONS = 4  # attention sinks: skipping them ruins every later token
ROUTER_WEIGHTS_FILE = "router.pt"
ROUTER_CONFIG_FILE = "router.json"
PACKAGED_ROUTER_DIR = Path(__file__).parent / "routers" / "smollm2-135m"

_MASK64 = (1 << 64) - 1


@dataclass
class RouterConfig:
    """What a router file was trained as: its layers, adapter rank, gate noise and lowest temperature."""

    layers: list[int]
    d_model: int
    adapter_rank: int = 8
    gate_noise: float = 0.0
    t_min: float = 0.05
    model: str = "SmolLM2-135M-Instruct"
    tokens_trained: int = 0
    extra: dict[str, object] = field(default_factory=dict)


class Routers(torch.nn.Module):
    """The learned routers and skip adapters of every routed layer (a few hundred kB)."""

    def __init__(self, config: RouterConfig) -> None:
        super().__init__()
        n, d, r = len(config.layers), config.d_model, config.adapter_rank
        self.config = config
        self.weight = torch.nn.Parameter(torch.zeros(n, d))
        self.bias = torch.nn.Parameter(torch.full((n,), 3.0))  # start near "always run"
        self.adapter_down = torch.nn.Parameter(torch.zeros(n, d, r))
        self.adapter_up = torch.nn.Parameter(torch.zeros(n, r, d))
        self.adapter_bias = torch.nn.Parameter(torch.zeros(n, d))
        self.slot = {layer: i for i, layer in enumerate(config.layers)}

    def score(self, slot: int, hidden: torch.Tensor) -> torch.Tensor:
        """Router logits ``s`` for rows of normalized hidden states [N, d] -> [N].

        A row-wise product and sum, not a matmul, so a row's score does not depend on the batch shape.
        """
        return (hidden * self.weight[slot]).sum(-1) + self.bias[slot]

    def skip_output(self, slot: int, hidden: torch.Tensor) -> torch.Tensor:
        """What a skipped row adds to the residual instead of the MLP output: [N, d]."""
        low = hidden @ self.adapter_down[slot]
        return low @ self.adapter_up[slot] + self.adapter_bias[slot]

    def flops_per_row(self) -> tuple[int, int]:
        """(router FLOPs, adapter FLOPs) per token for one routed layer."""
        d, r = self.config.d_model, self.config.adapter_rank
        return 2 * d, 4 * d * r + d


def logit_temperature(temperature: float) -> float:
    """logit(T); +inf at T = 1 (exact)."""
    if temperature >= 1.0:
        return math.inf
    return math.log(temperature) - math.log1p(-temperature)


def clamp_temperature(temperature: float, t_min: float) -> float:
    """``T`` clamped into ``[t_min, 1]``; a clamp is logged, never an error (DESIGN §3)."""
    if not math.isfinite(temperature):
        log.warning("routing_temperature %r is not finite; using 1.0", temperature)
        return 1.0
    clamped = min(1.0, max(t_min, temperature))
    if clamped != temperature:
        log.warning("routing_temperature %s clamped to %s (range [%s, 1])", temperature, clamped, t_min)
    return clamped


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed: np.ndarray = x ^ (x >> np.uint64(31))
        return mixed


def gate_uniform_matrix(seed: int, positions: np.ndarray, layers: list[int]) -> np.ndarray:
    """U(seed, position, layer) in [0, 1) for each position and layer: [n, len(layers)]. A pure function,
    the same on every machine, computed in one vectorised pass (it runs on every decode step)."""
    seed_mix = _splitmix64(np.array([seed & _MASK64], dtype=np.uint64))
    with np.errstate(over="ignore"):
        salts = (np.asarray(layers, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x632BE59BD9B4E019)
    layer_mix = _splitmix64(seed_mix ^ salts)
    h = _splitmix64(layer_mix[None, :] ^ positions.astype(np.uint64)[:, None])
    uniforms: np.ndarray = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return uniforms


def gate_uniforms(seed: int, positions: np.ndarray, layer: int) -> np.ndarray:
    """U(seed, position, layer) for one layer: [n]."""
    column: np.ndarray = gate_uniform_matrix(seed, positions, [layer])[:, 0]
    return column


def gate_thresholds(
    seed: int, positions: np.ndarray, layers: list[int], logit_t: float, *, gate_noise: float
) -> np.ndarray:
    """Per position and routed layer, the router score above which the MLP runs: [n, len(layers)].

    ``u < sigmoid(s + logit T)``  <=>  ``s > logit(u) - logit T``: one comparison per row at run time.
    The attention sinks get ``-inf`` (always run).
    """
    u = 0.5 + gate_noise * (gate_uniform_matrix(seed, positions, layers) - 0.5)
    with np.errstate(divide="ignore"):
        thresholds: np.ndarray = np.log(u) - np.log1p(-u) - logit_t
    thresholds[positions < ALWAYS_RUN_POSITIONS] = -np.inf
    return thresholds


def execute_mask(
    scores: torch.Tensor,
    logit_t: torch.Tensor,
    uniforms: torch.Tensor,
    positions: torch.Tensor,
    *,
    gate_noise: float,
) -> torch.Tensor:
    """Which rows run the MLP (bool [N]); see the module docstring for the rule."""
    p_exec = torch.sigmoid(scores.double() + logit_t)
    u = 0.5 + gate_noise * (uniforms - 0.5)
    return (u < p_exec) | (positions < ALWAYS_RUN_POSITIONS)


def file_sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def save_routers(routers: Routers, directory: Path) -> str:
    """Write router.pt and router.json (config + the weights' sha256); returns the hash."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / ROUTER_WEIGHTS_FILE
    state = {k: v.detach().clone().contiguous() for k, v in routers.state_dict().items()}
    torch.save(state, weights)
    digest = file_sha256(weights)
    payload = {
        "config": asdict(routers.config),
        "weights_sha256": digest,
        "weights_file": ROUTER_WEIGHTS_FILE,
    }
    (directory / ROUTER_CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n")
    return digest


def load_routers(directory: Path) -> tuple[Routers, str]:
    """Read a router directory; checks the weights against the recorded sha256."""
    payload = json.loads((directory / ROUTER_CONFIG_FILE).read_text())
    weights = directory / payload.get("weights_file", ROUTER_WEIGHTS_FILE)
    digest = file_sha256(weights)
    if digest != payload["weights_sha256"]:
        raise ValueError(f"router weights {weights} hash {digest} != recorded {payload['weights_sha256']}")
    routers = Routers(RouterConfig(**payload["config"]))
    routers.load_state_dict(torch.load(weights, weights_only=True))
    routers.requires_grad_(False)
    return routers, digest
