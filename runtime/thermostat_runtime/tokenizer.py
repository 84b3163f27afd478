"""The model's tokenizer and chat template, rebuilt from the GGUF's own metadata (no download).

GPT-2-style byte-level BPE (``tokenizer.ggml.model = gpt2``); SmolLM's pre-tokenizer splits digits
one by one before the byte-level split. Control tokens (``<|im_start|>``…) are special tokens, so
they are matched whole in text and dropped when decoding with ``skip_special=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from thermostat_runtime.gguf_loader import TokenizerData

_CONTROL = 3  # gguf TokenType.CONTROL
_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ChatTokenizer:
    """encode/decode text and render chat messages with the model's template."""

    def __init__(self, data: TokenizerData) -> None:
        self._data = data
        self._tokenizer = _build_bpe(data)
        self.special_ids = {i for i, t in enumerate(data.token_types) if t == _CONTROL}
        self.eos_id = data.eos_id
        self.bos_id = data.bos_id
        # Generation stops at the template's end-of-turn and at the document end token.
        self.stop_ids = {
            i
            for i in (data.eos_id, self._token_id("<|endoftext|>"), self._token_id("<|im_end|>"))
            if i is not None
        }

    def _token_id(self, token: str) -> int | None:
        value = self._tokenizer.token_to_id(token)
        return None if value is None else int(value)

    @property
    def vocab_size(self) -> int:
        return len(self._data.tokens)

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=skip_special))

    def render_chat(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True
    ) -> str:
        """The prompt text for ``messages`` (OpenAI-style dicts with role and content)."""
        import jinja2

        env = jinja2.Environment(autoescape=False, keep_trailing_newline=True)
        template = env.from_string(self._data.chat_template or _CHATML)
        return template.render(messages=list(messages), add_generation_prompt=add_generation_prompt)

    def encode_chat(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        return self.encode(self.render_chat(messages))


def _build_bpe(data: TokenizerData) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(data.tokens)}
    merges = [(left, right) for left, _, right in (m.partition(" ") for m in data.merges)]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if data.pre == "smollm":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tokenizer.pre_tokenizer = byte_level
    tokenizer.decoder = decoders.ByteLevel()
    specials = [
        AddedToken(data.tokens[i], special=True, normalized=False)
        for i, t in enumerate(data.token_types)
        if t == _CONTROL
    ]
    tokenizer.add_special_tokens(specials)
    return tokenizer
