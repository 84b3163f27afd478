"""Shadow quality: a fraction of requests also runs at exact (T = 1), teacher-forced on the same tokens.

A shadowed request gets a second sequence in the same batch, opened at routing temperature 1 with the
same seed and fed exactly the tokens the routed sequence is fed (its prompt, then each token the routed
sequence generated). At every generation step both produce a next-token distribution for the same
prefix; ``compare`` counts the step, whether the two top-1 tokens agree, and KL(exact || routed) in
nats. The counters ``thermostat_shadow_{tokens,agree_tokens,kl_nats}_total`` give quality as rate
ratios (agreement = agree/tokens; quality loss = 100 × (1 − agreement) points, DESIGN §3). Shadow
compute is real work (it counts in busy time and power) but not in the served FLOP counters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch


@dataclass
class ShadowTally:
    """What the shadow measured for one request."""

    tokens: int = 0
    agree_tokens: int = 0
    kl_nats: float = 0.0
    kl_sq_nats: float = 0.0  # sum of squared per-token KL: the spread behind a rollout's interval


class ShadowSelector:
    """Chooses which requests are shadowed: each with probability ``fraction`` (0 never, 1 always)."""

    def __init__(self, fraction: float, *, seed: int | None = None) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"shadow fraction must be in [0, 1], got {fraction}")
        self.fraction = fraction
        self._rng = random.Random(seed)

    def choose(self) -> bool:
        if self.fraction >= 1.0:
            return True
        return self.fraction > 0.0 and self._rng.random() < self.fraction


def compare(exact_logits: torch.Tensor, routed_logits: torch.Tensor) -> tuple[bool, float]:
    """(top-1 agrees, KL(exact || routed) in nats) for one position's logits [vocab]."""
    log_exact = torch.log_softmax(exact_logits.double(), dim=-1)
    log_routed = torch.log_softmax(routed_logits.double(), dim=-1)
    kl = float(torch.sum(log_exact.exp() * (log_exact - log_routed)))
    # KL is >= 0; rounding can leave a -1e-17 on identical rows.
    return bool(torch.argmax(exact_logits) == torch.argmax(routed_logits)), max(kl, 0.0)
