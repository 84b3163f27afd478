"""The routed SmolLM2 on this CPU: exactness at T = 1, real skipping, reproducible gates."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from thermostat_runtime.model import RoutedLlama, generate

pytestmark = pytest.mark.model

PROMPTS = ["The capital of France is", "def add(a, b):\n    return", "Licensed under the Apache License"]


def _greedy_batch(model: RoutedLlama, prompts: list[list[int]], temps: list[float], steps: int) -> list[list[int]]:
    states = [model.new_sequence(routing_temperature=t, seed=10 + i) for i, t in enumerate(temps)]
    out = model.forward(states, prompts)
    tokens: list[list[int]] = [[] for _ in prompts]
    for _ in range(steps):
        nxt = [int(torch.argmax(row)) for row in out.logits]
        for seq, token in zip(tokens, nxt, strict=True):
            seq.append(token)
        out = model.forward(states, [[t] for t in nxt])
    return tokens


def test_chat_generation_answers(unrouted_model: RoutedLlama) -> None:
    ids = unrouted_model.tokenizer.encode_chat([{"role": "user", "content": "What is the capital of France?"}])
    result = generate(unrouted_model, ids, max_new_tokens=20)
    assert "Paris" in unrouted_model.tokenizer.decode(result.tokens)
    assert result.finish_reason == "stop"


def test_cached_steps_match_the_dense_forward(unrouted_model: RoutedLlama) -> None:
    ids = unrouted_model.tokenizer.encode(PROMPTS[2] + ", Version 2.0 (the License).")
    dense = unrouted_model.forward_dense(torch.tensor([ids]))[0]
    state = unrouted_model.new_sequence()
    first = unrouted_model.forward([state], [ids[:5]], all_logits=True)
    rest = unrouted_model.forward([state], [ids[5:]], all_logits=True)
    assert first.all_logits is not None
    assert rest.all_logits is not None
    cached = torch.cat([first.all_logits[0], rest.all_logits[0]])
    assert torch.allclose(cached, dense, atol=1e-3)


def test_temperature_one_is_bit_identical_to_the_unrouted_model(
    unrouted_model: RoutedLlama, routed_model: RoutedLlama
) -> None:
    ids = unrouted_model.tokenizer.encode(PROMPTS[0])
    for steps in range(2):
        plain, routed = (
            unrouted_model.new_sequence(seed=3),
            routed_model.new_sequence(routing_temperature=1.0, seed=3),
        )
        a = unrouted_model.forward([plain], [ids])
        b = routed_model.forward([routed], [ids])
        for _ in range(steps):
            token = int(torch.argmax(a.logits[0]))
            a, b = unrouted_model.forward([plain], [[token]]), routed_model.forward([routed], [[token]])
        assert torch.equal(a.logits, b.logits)
        assert b.flops_executed == b.flops_full
        assert routed.executed_fraction == 1.0


def test_greedy_tokens_do_not_depend_on_the_batch_mix(routed_model: RoutedLlama) -> None:
    prompts = [routed_model.tokenizer.encode(p) for p in PROMPTS]
    temps = [1.0, 0.3, 0.6]
    together = _greedy_batch(routed_model, prompts, temps, steps=6)
    for i in range(len(prompts)):
        states = [routed_model.new_sequence(routing_temperature=temps[i], seed=10 + i)]
        alone = _greedy_batch_single(routed_model, states[0], prompts[i], steps=6)
        assert alone == together[i]


def _greedy_batch_single(model: RoutedLlama, state: object, prompt: list[int], steps: int) -> list[int]:
    assert hasattr(state, "seed")
    out = model.forward([state], [prompt])  # type: ignore[list-item]
    tokens = []
    for _ in range(steps):
        tokens.append(int(torch.argmax(out.logits[0])))
        out = model.forward([state], [[tokens[-1]]])  # type: ignore[list-item]
    return tokens


def test_gates_do_not_depend_on_batch_neighbours(routed_model: RoutedLlama) -> None:
    ids = routed_model.tokenizer.encode(PROMPTS[1])
    alone = routed_model.forward([routed_model.new_sequence(routing_temperature=0.4, seed=5)], [ids], record_gates=True)
    neighbours = [routed_model.new_sequence(routing_temperature=t, seed=s) for t, s in ((0.2, 9), (0.9, 1))]
    mixed = routed_model.forward(
        [neighbours[0], routed_model.new_sequence(routing_temperature=0.4, seed=5), neighbours[1]],
        [routed_model.tokenizer.encode(PROMPTS[0]), ids, [1, 2, 3]],
        record_gates=True,
    )
    start = len(routed_model.tokenizer.encode(PROMPTS[0]))
    for layer, mask in alone.exec_masks.items():
        assert torch.equal(mask, mixed.exec_masks[layer][start : start + len(ids)])
    assert not all(bool(m.all()) for m in alone.exec_masks.values())


def test_rows_fed_to_mlps_are_counted_and_match_the_executed_fraction(
    routed_model: RoutedLlama, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed: list[int] = []
    original = routed_model.mlp

    def counting_mlp(layer: int, h: torch.Tensor) -> torch.Tensor:
        fed.append(h.shape[0])
        return original(layer, h)

    monkeypatch.setattr(routed_model, "mlp", counting_mlp)
    states = [routed_model.new_sequence(routing_temperature=t, seed=i) for i, t in enumerate((0.2, 0.5, 1.0))]
    ids = routed_model.tokenizer.encode(" ".join(PROMPTS) * 2)
    out = routed_model.forward(states, [ids] * 3)
    assert sum(fed) == out.mlp_rows_executed < out.mlp_rows_full
    skipped = out.mlp_rows_full - out.mlp_rows_executed
    assert sum(s.mlp_rows_executed for s in states) == out.mlp_rows_executed
    assert out.flops_full - out.flops_executed > 0.9 * skipped * routed_model.mlp_flops
    assert out.flops_executed == pytest.approx(sum(s.flops_executed for s in states))
    assert states[2].executed_fraction == 1.0
    assert states[0].executed_fraction < states[1].executed_fraction < 1


def test_batch_one_skips_by_not_running_the_mlp(routed_model: RoutedLlama, monkeypatch: pytest.MonkeyPatch) -> None:
    fed: list[int] = []
    original = routed_model.mlp
    monkeypatch.setattr(routed_model, "mlp", lambda layer, h: fed.append(h.shape[0]) or original(layer, h))
    state = routed_model.new_sequence(routing_temperature=0.1, seed=2)
    routed_model.forward([state], [routed_model.tokenizer.encode(PROMPTS[0])])
    fed.clear()
    out = routed_model.forward([state], [[13]])
    assert len(fed) == out.mlp_rows_executed < routed_model.config.n_layers
    assert all(n == 1 for n in fed)


def test_executed_flops_are_monotone_in_temperature(routed_model: RoutedLlama) -> None:
    ids = routed_model.tokenizer.encode(" ".join(PROMPTS) * 3)
    flops = []
    for t in (0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0):
        states = [routed_model.new_sequence(routing_temperature=t, seed=s) for s in range(4)]
        out = routed_model.forward(states, [ids] * 4)
        flops.append(out.flops_executed)
    assert flops == sorted(flops)
    assert len(set(flops)) == len(flops)


def test_same_seed_and_temperature_give_the_same_output(routed_model: RoutedLlama) -> None:
    ids = routed_model.tokenizer.encode(PROMPTS[2])
    runs = [
        generate(routed_model, ids, max_new_tokens=8, routing_temperature=0.3, seed=s, temperature=0.8)
        for s in (4, 4, 5)
    ]
    assert runs[0] == runs[1]
    masks = [
        routed_model.forward(
            [routed_model.new_sequence(routing_temperature=0.3, seed=s)], [ids], record_gates=True
        ).exec_masks
        for s in (4, 5)
    ]
    assert any(not torch.equal(masks[0][k], masks[1][k]) for k in masks[0])


def test_attention_sinks_always_run(routed_model: RoutedLlama) -> None:
    ids = routed_model.tokenizer.encode(PROMPTS[1])
    out = routed_model.forward([routed_model.new_sequence(routing_temperature=0.05, seed=1)], [ids], record_gates=True)
    assert all(bool(mask[:4].all()) for mask in out.exec_masks.values())
    assert not all(bool(mask[4:].all()) for mask in out.exec_masks.values())


def test_temperature_out_of_range_is_clamped_not_refused(
    routed_model: RoutedLlama, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        state = routed_model.new_sequence(routing_temperature=0.0001)
    assert state.routing_temperature == routed_model.t_min
    assert "clamped" in caplog.text
    assert routed_model.new_sequence(routing_temperature=7.0).routing_temperature == 1.0


@pytest.mark.slow
def test_quick_profile_command_writes_a_valid_profile(tmp_path: Path, routed_model: RoutedLlama) -> None:
    from thermostat_runtime.profile import ProfileSettings, measure_profile, validate_profile

    profile, bench = measure_profile(routed_model, ProfileSettings.quick())
    validate_profile(profile)
    temps = [p["routing_temperature"] for p in profile["points"]]
    assert temps[0] == routed_model.t_min
    assert temps[-1] == 1.0
    exact = profile["points"][-1]
    assert exact["top1_agreement"] == 1.0
    assert exact["kl_nats"] == 0.0
    assert profile["points"][0]["flops_fraction"] < 1.0
    assert len(bench) == len(temps)
