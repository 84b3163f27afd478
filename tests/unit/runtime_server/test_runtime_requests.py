"""Pure pieces of the server: request parsing (400 messages), incremental detokenization with stop
strings, the routing setting and its file source, shadow comparison and sampling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from thermostat_runtime.detokenize import TextStream
from thermostat_runtime.openai_api import BadRequestError, parse_chat, parse_completion
from thermostat_runtime.routing_config import FileSource, RoutingSetting
from thermostat_runtime.sampling import new_generator, sample_token
from thermostat_runtime.shadow import ShadowSelector, compare

pytestmark = pytest.mark.fast


def test_a_completion_body_is_parsed_with_defaults() -> None:
    parsed = parse_completion({"prompt": "hi", "stream": True, "stream_options": {"include_usage": True}, "seed": 3})
    assert (parsed.prompt_text, parsed.max_tokens, parsed.temperature, parsed.seed) == ("hi", 16, 1.0, 3)
    assert parsed.stream
    assert parsed.include_usage
    assert parsed.stop == []
    assert parse_completion({"prompt": [1, 2, 3]}).prompt_ids == [1, 2, 3]
    chat = parse_chat({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}], "stop": "x"})
    assert chat.messages == [{"role": "user", "content": "a"}]
    assert chat.max_tokens is None
    assert chat.stop == ["x"]


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "max_tokens": 2.5}, "max_tokens"),
        ({"prompt": "x", "top_p": 0}, "top_p"),
        ({"prompt": "x", "stream": "yes"}, "stream"),
        ({"prompt": ["a", "b"]}, "one prompt"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": "x", "logprobs": 2}, "logprobs"),
        ("a string", "JSON object"),
    ],
)
def test_bad_completion_bodies_name_the_field(body: object, phrase: str) -> None:
    with pytest.raises(BadRequestError, match=phrase):
        parse_completion(body)


VOCAB = {1: b"Hel", 2: b"lo", 3: b" wor", 4: b"ld", 5: b"\xc3", 6: b"\xa9", 7: b"!"}


def _decode(ids: Sequence[int]) -> str:
    return b"".join(VOCAB[i] for i in ids).decode("utf-8", errors="replace")


def test_text_streams_hold_back_split_characters() -> None:
    stream = TextStream(_decode)
    assert [stream.push(i) for i in (1, 2, 5, 6, 7)] == ["Hel", "lo", "", "é", "!"]


def test_a_stop_string_split_over_tokens_is_never_sent() -> None:
    stream = TextStream(_decode, stop=["o wo"])
    sent = "".join(stream.push(i) for i in (1, 2, 3, 4))
    assert stream.stopped
    assert stream.text == "Hell"
    assert sent + stream.flush() == "Hell"


def test_the_routing_setting_keeps_the_last_good_value() -> None:
    setting = RoutingSetting()
    seen: list[float] = []
    setting.on_change.append(seen.append)
    assert not setting.ready
    assert setting.current() == 1.0
    assert setting.update(" 0.4\n", "test")
    for bad in ("abc", "0", "-1", "nan", "inf"):
        assert not setting.update(bad, "test")
    assert setting.value == 0.4
    assert seen == [0.4]


def test_a_file_change_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "t"
    setting = RoutingSetting()
    source = FileSource(path, setting)
    source.read_once()
    assert not setting.ready  # no file yet: not Ready
    path.write_text("0.6")
    source.read_once()
    assert setting.value == 0.6
    path.write_text("0.25")
    source._last = (0.0, "0.6")  # the same mtime granularity can hide a quick rewrite; content decides
    source.read_once()
    assert setting.value == 0.25


def test_shadow_compare_is_zero_on_identical_logits_and_positive_otherwise() -> None:
    logits = torch.randn(50, generator=torch.Generator().manual_seed(0))
    assert compare(logits, logits.clone()) == (True, 0.0)
    other = logits.clone()
    other[int(torch.argmax(logits))] -= 10
    agree, kl = compare(logits, other)
    assert not agree
    assert kl > 0
    assert math.isfinite(kl)
    assert not ShadowSelector(0.0).choose()
    assert ShadowSelector(1.0).choose()
    picks = ShadowSelector(0.25, seed=1)
    assert 150 < sum(picks.choose() for _ in range(1000)) < 350


def test_sampling_is_greedy_at_zero_and_seeded_otherwise() -> None:
    logits = torch.tensor([0.0, 3.0, 1.0, 2.9])
    assert sample_token(logits, temperature=0.0, top_p=1.0, generator=new_generator(0)) == 1
    draws = [sample_token(logits, temperature=1.0, top_p=1.0, generator=new_generator(5)) for _ in range(3)]
    assert len(set(draws)) == 1
    top = {sample_token(logits, temperature=1.0, top_p=0.5, generator=new_generator(s)) for s in range(50)}
    assert top <= {1, 3}


@pytest.mark.parametrize("temperature", [5e-324, 1e-310, 1e-300])
@pytest.mark.parametrize("top_p", [1.0, 1e-9])
def test_a_vanishing_temperature_samples_greedily_instead_of_failing(temperature: float, top_p: float) -> None:
    """Found by the fuzzer: 5e-324 overflowed the scaled logits, and the batch failed with a 500."""
    logits = torch.tensor([0.0, 3.0, -1.0, 2.9])
    assert sample_token(logits, temperature=temperature, top_p=top_p, generator=new_generator(0)) == 1
