"""A tiny real torch engine for server and scheduler tests: an 8-token vocabulary and one linear layer,
through the same ``Engine`` interface as the model, so the HTTP layer and the batching run for real in
milliseconds (the model's own behaviour is tested with the model)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from thermostat_runtime.model import SequenceState, StepOutput


class TinyEngine:
    """Next-token logits = a fixed linear map of the last token's embedding; EOS is never produced."""

    name, t_min, router_hash, context_length, vocab_size = "tiny", 0.1, "none", 64, 8
    stop_ids: set[int] = set()  # noqa: RUF012 - a constant of the stand-in

    def __init__(self) -> None:
        self.weight = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
        self.batch_sizes: list[int] = []
        self.fail_next = False
        self.temperatures: list[float] = []
        self.pause_after: int | None = None  # block in forward after this many steps until `resume`
        self.paused = threading.Event()
        self.resume = threading.Event()

    def encode_text(self, text: str) -> list[int]:
        return [ord(c) % 8 for c in text]

    def encode_chat(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        return self.encode_text("".join(m["content"] for m in messages))

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(97 + i) for i in ids)

    def clamp(self, routing_temperature: float) -> float:
        return min(1.0, max(self.t_min, routing_temperature))

    def new_sequence(self, *, routing_temperature: float, seed: int) -> SequenceState:
        return SequenceState(seed=seed, routing_temperature=routing_temperature)

    def forward(self, states: Sequence[SequenceState], token_lists: Sequence[Sequence[int]]) -> StepOutput:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("injected failure")
        if self.pause_after is not None and len(self.batch_sizes) == self.pause_after:
            self.paused.set()
            self.resume.wait(timeout=30)
        self.batch_sizes.append(len(states))
        self.temperatures.extend(s.routing_temperature for s in states)
        for state, tokens in zip(states, token_lists, strict=True):
            state.length += len(tokens)
            state.flops_full += 10.0 * len(tokens)
            state.flops_executed += 10.0 * len(tokens) * state.routing_temperature
        logits = torch.stack([self.weight[t[-1]] for t in token_lists])
        return StepOutput(logits, 0, 0, 0.0, 0.0)
