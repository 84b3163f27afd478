"""Neuron routing: per-token magnitude gates on the input channels of every decoder weight matrix.

For decoder layer ``l`` and routed unit ``u`` (the input of one weight matrix, see ``UNITS``) a token's
input row ``x`` keeps channel ``i`` iff ``|x_i| > θ[l, u](T)``; skipped channels are never multiplied
(the sparse kernels of ``sparse`` gather only the kept rows of the transposed weight). The threshold is a
quantile of ``|x|`` on the training split: ``θ[l, u](T) = Q[l, u](s[l, u](T))``, where ``s[l, u](T)`` is
the sparsity the schedule allots to that unit at temperature ``T`` (the router file, ``NeuronRouter``).

Contracts (DESIGN §3): ``T = 1`` bypasses routing (the model runs its exact path, bit-identical);
``s`` is non-increasing in ``T`` for every unit and strictly decreasing for some, so expected compute is
strictly monotone in ``T``; the first ``ALWAYS_RUN_POSITIONS`` positions (attention sinks) and the LM
head are exact. Gates are deterministic: they depend only on ``T`` and the request's own activations
(the seed is logged, and reserved for sampled gates, which measured worse). The router's identity is
the sha256 of its JSON file (``router_hash``).

This module is pure torch + numpy; it never loads the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

ALWAYS_RUN_POSITIONS = 4  # attention sinks: sparsifying them ruins every later token
UNITS = ("qkv", "o", "gu", "down")  # inputs of: q/k/v (shared), o, gate/up (shared), down
ROUTER_FILE = "router.json"
ROUTER_FORMAT = "thermostat-neuron-router/1"
PACKAGED_ROUTER_DIR = Path(__file__).parent / "routers" / "smollm2-135m"


@dataclass
class NeuronRouter:
    """Per layer and unit: |x| quantiles (training split) and the sparsity schedule over T.

    ``quantiles[l, u, j]`` is the ``levels[j]`` quantile of ``|x|``; ``sparsity[k, l, u]`` the share of
    channels skipped at ``t_grid[k]`` (``t_grid`` increasing, ending at 1.0 where all are 0).
    """

    levels: np.ndarray  # [J] in [0, 1), increasing
    quantiles: np.ndarray  # [L, U, J] non-decreasing in J
    t_grid: np.ndarray  # [K] increasing, t_grid[0] = t_min, t_grid[-1] = 1
    sparsity: np.ndarray  # [K, L, U] non-increasing in K
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        self._cache: dict[float, torch.Tensor] = {}
        self.validate()

    @property
    def t_min(self) -> float:
        return float(self.t_grid[0])

    @property
    def n_layers(self) -> int:
        return int(self.quantiles.shape[0])

    def validate(self) -> None:
        """Raise ValueError unless the tables keep the contracts (monotone, exact at T = 1)."""
        if self.quantiles.shape[1] != len(UNITS) or self.sparsity.shape[1:] != self.quantiles.shape[:2]:
            raise ValueError(f"router tables have shapes {self.quantiles.shape} / {self.sparsity.shape}")
        if not (np.all(np.diff(self.t_grid) > 0) and self.t_grid[-1] == 1.0 and self.t_grid[0] > 0):
            raise ValueError("router t_grid must increase strictly from t_min > 0 to 1.0")
        if np.any(np.diff(self.sparsity, axis=0) > 1e-12) or np.any(self.sparsity[-1] != 0):
            raise ValueError("router sparsity must not increase with T and must be 0 at T = 1")
        if np.any(np.diff(self.quantiles, axis=2) < 0):
            raise ValueError("router quantiles must be non-decreasing")

    def sparsity_at(self, temperature: float) -> np.ndarray:
        """[L, U] skipped share per unit at T (linear between grid points)."""
        t = min(1.0, max(self.t_min, temperature))
        k = int(np.searchsorted(self.t_grid, t, side="right")) - 1
        if k >= len(self.t_grid) - 1:
            return np.array(self.sparsity[-1], copy=True)
        w = (t - self.t_grid[k]) / (self.t_grid[k + 1] - self.t_grid[k])
        result: np.ndarray = (1 - w) * self.sparsity[k] + w * self.sparsity[k + 1]
        return result

    def thresholds(self, temperature: float) -> torch.Tensor:
        """[L, U] float32 |x| thresholds at T (cached per T; -1 where a unit skips nothing)."""
        cached = self._cache.get(temperature)
        if cached is None:
            s = self.sparsity_at(temperature)
            theta = np.empty(s.shape)
            for l_u in np.ndindex(s.shape):
                q = self.quantiles[l_u]
                theta[l_u] = -1.0 if s[l_u] <= 0 else float(np.interp(s[l_u], self.levels, q))
            cached = torch.from_numpy(theta.astype(np.float32))
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[temperature] = cached
        return cached

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ROUTER_FORMAT,
            "units": list(UNITS),
            "levels": self.levels.tolist(),
            "quantiles": np.round(self.quantiles, 6).tolist(),
            "t_grid": self.t_grid.tolist(),
            "sparsity": np.round(self.sparsity, 6).tolist(),
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> NeuronRouter:
        if payload.get("format") != ROUTER_FORMAT or payload.get("units") != list(UNITS):
            raise ValueError(
                f"router file format {payload.get('format')!r} is not {ROUTER_FORMAT!r}; "
                "recalibrate with `thermostat-runtime calibrate`"
            )
        return cls(
            levels=np.asarray(payload["levels"], dtype=np.float64),
            quantiles=np.asarray(payload["quantiles"], dtype=np.float64),
            t_grid=np.asarray(payload["t_grid"], dtype=np.float64),
            sparsity=np.asarray(payload["sparsity"], dtype=np.float64),
            meta=dict(payload.get("meta", {})),
        )


def clamp_temperature(temperature: float, t_min: float) -> float:
    """``T`` clamped into ``[t_min, 1]``; a clamp is logged, never an error (DESIGN §3)."""
    if not math.isfinite(temperature):
        log.warning("routing_temperature %r is not finite; using 1.0", temperature)
        return 1.0
    clamped = min(1.0, max(t_min, temperature))
    if clamped != temperature:
        log.warning("routing_temperature %s clamped to %s (range [%s, 1])", temperature, clamped, t_min)
    return clamped


def file_sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def save_router(router: NeuronRouter, directory: Path) -> str:
    """Write router.json; returns its hash (the router's identity)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ROUTER_FILE
    path.write_text(json.dumps(router.to_json(), separators=(",", ":")) + "\n")
    return file_sha256(path)


def load_router(directory: Path) -> tuple[NeuronRouter, str]:
    """Read a router directory (or a router.json path); returns the router and its file hash."""
    path = directory if directory.suffix == ".json" else directory / ROUTER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no router file {path}; calibrate one with `thermostat-runtime calibrate`")
    return NeuronRouter.from_json(json.loads(path.read_text())), file_sha256(path)
