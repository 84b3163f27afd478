"""Chat quality: the routed model along the exact model's greedy answers to the committed chat prompts.

For each prompt of ``data/chat_prompts.json`` (instructions, questions, code, lists) the exact model's
greedy answer (up to ``max_tokens``, cached under the calibration cache directory) is the reference:

* shadow-style KL: teacher-forced on prompt + exact answer, the mean per-token KL(exact ‖ routed) over
  the answer's positions (and the one predicting its end), as the runtime's shadow measures it;
* greedy divergence: the routed model answers greedily itself; ``prefix_fraction`` is the mean share of
  exact's answer tokens it produced before the first differing token, ``identical_share`` the share of
  answers identical to the end.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F  # noqa: N812 - the torch convention

from thermostat_runtime.calibrate import cache_dir
from thermostat_runtime.model import RoutedLlama

CHAT_PROMPTS = Path(__file__).parent / "data" / "chat_prompts.json"


def chat_prompt_ids(model: RoutedLlama, limit: int | None = None) -> list[list[int]]:
    prompts = json.loads(CHAT_PROMPTS.read_text())["prompts"][:limit]
    return [model.tokenizer.encode_chat([{"role": "user", "content": p}]) for p in prompts]


def greedy_answers(
    model: RoutedLlama, prompts: Sequence[Sequence[int]], *, max_tokens: int, routing_temperature: float = 1.0
) -> list[list[int]]:
    """Batched greedy answers (stop token excluded), each row gated by its own tokens only."""
    states = [model.new_sequence(routing_temperature=routing_temperature) for _ in prompts]
    out = model.forward(states, [list(p) for p in prompts])
    answers: list[list[int]] = [[] for _ in prompts]
    live = list(range(len(prompts)))
    for _ in range(max_tokens):
        nxt = [int(t) for t in out.logits.argmax(-1)]
        still = []
        for row, token in zip(live, nxt, strict=True):
            if token not in model.tokenizer.stop_ids:
                answers[row].append(token)
                if len(answers[row]) < max_tokens:
                    still.append(row)
        live = still
        if not live:
            break
        out = model.forward([states[r] for r in live], [[answers[r][-1]] for r in live])
    return answers


def exact_answers(model: RoutedLlama, prompts: list[list[int]], *, max_tokens: int) -> list[list[int]]:
    key = hashlib.sha256(json.dumps([model.name, prompts, max_tokens]).encode()).hexdigest()[:16]
    path = cache_dir() / f"chat-exact-{key}.json"
    if path.is_file():
        cached: list[list[int]] = json.loads(path.read_text())
        return cached
    answers = greedy_answers(model.with_router(None), prompts, max_tokens=max_tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(answers))
    return answers


def _prefix(routed: list[int], exact: list[int]) -> tuple[float, bool]:
    same = 0
    for a, b in zip(routed, exact, strict=False):
        if a != b:
            break
        same += 1
    return (same / len(exact) if exact else 1.0), routed == exact


def chat_quality(
    model: RoutedLlama, prompts: list[list[int]], answers: list[list[int]], temperatures: Sequence[float],
    *, max_tokens: int,
) -> dict[float, dict[str, Any]]:  # fmt: skip
    """Per T: KL along exact's answers, top-1 there, prefix fraction and identical share."""
    exact_model = model.with_router(None)
    sums = {t: [0.0, 0, 0] for t in temperatures}  # KL sum, agreeing tokens, tokens
    for prompt, answer in zip(prompts, answers, strict=True):
        ids = prompt + answer
        span = slice(len(prompt) - 1, len(ids))
        exact = exact_model.forward([exact_model.new_sequence()], [ids], all_logits=True).all_logits
        assert exact is not None
        ref = F.log_softmax(exact[0][span], dim=-1)
        for t in temperatures:
            routed = model.forward([model.new_sequence(routing_temperature=t)], [ids], all_logits=True).all_logits
            assert routed is not None
            logp = F.log_softmax(routed[0][span], dim=-1)
            sums[t][0] += float((ref.exp() * (ref - logp)).sum(-1).clamp_min(0).sum())
            sums[t][1] += int((logp.argmax(-1) == ref.argmax(-1)).sum())
            sums[t][2] += ref.shape[0]
    result = {}
    for t in temperatures:
        own = greedy_answers(model, prompts, max_tokens=max_tokens, routing_temperature=t)
        prefixes = [_prefix(r, e) for r, e in zip(own, answers, strict=True)]
        kl = sums[t][0] / sums[t][2]
        result[t] = {
            "prompts": len(prompts),
            "kl_nats": kl,
            "quality_loss_percent": 100 * math.expm1(kl),
            "top1_agreement": sums[t][1] / sums[t][2],
            "prefix_fraction": sum(p for p, _ in prefixes) / len(prefixes),
            "identical_share": sum(1 for _, same in prefixes if same) / len(prefixes),
        }
    return result
