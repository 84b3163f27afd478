"""Our GGUF loader and Llama against a second implementation: transformers' GGUF loading (test-only)."""

from __future__ import annotations

import pytest
import torch

from thermostat_runtime.model import RoutedLlama, generate

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def reference() -> tuple[object, object]:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from thermostat_runtime.gguf_loader import default_model_path

    path = default_model_path()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return model, tokenizer


def test_logits_and_greedy_output_agree_with_transformers(
    unrouted_model: RoutedLlama, reference: tuple[object, object]
) -> None:
    hf_model, hf_tokenizer = reference
    messages = [{"role": "user", "content": "Tell me about the moon."}]
    ids = unrouted_model.tokenizer.encode_chat(messages)
    assert unrouted_model.tokenizer.render_chat(messages) == hf_tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        messages, add_generation_prompt=True, tokenize=False
    )
    with torch.no_grad():
        expected = hf_model(torch.tensor([ids])).logits[0]  # type: ignore[operator]
        ours = unrouted_model.forward_dense(torch.tensor([ids]))[0]
    assert torch.allclose(ours, expected, atol=1e-3, rtol=0)
    greedy = hf_model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)  # type: ignore[attr-defined]
    assert generate(unrouted_model, ids, max_new_tokens=16).tokens == greedy[0, len(ids) :].tolist()[:16]


def test_tokenizer_agrees_with_transformers(unrouted_model: RoutedLlama, reference: tuple[object, object]) -> None:
    _, hf_tokenizer = reference
    text = "def fibonacci(n):\n    # 12345 <|im_start|> héllo wörld\t ünïcode 😀"
    ids = unrouted_model.tokenizer.encode(text)
    assert ids == hf_tokenizer.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
    assert unrouted_model.tokenizer.decode(ids, skip_special=False) == text
