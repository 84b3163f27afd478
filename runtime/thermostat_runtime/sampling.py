"""Token sampling for the server: greedy at temperature 0, else softmax with temperature and top-p.

Each request owns a ``torch.Generator`` seeded with its ``seed``, so its draws depend only on its own
logits and seed, never on batch neighbours (DESIGN §3: ``seed`` seeds sampling and routing).
"""

from __future__ import annotations

import torch


def new_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sample_token(logits: torch.Tensor, *, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """One token id from ``logits`` [vocab]."""
    scaled = logits.double() / temperature if temperature > 0.0 else None
    if scaled is None or not bool(torch.isfinite(scaled).all()):
        # A temperature so small that the logits overflow (e.g. 5e-324) is temperature 0's limit: greedy.
        return int(torch.argmax(logits))
    probs = torch.softmax(scaled, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        keep = torch.cumsum(sorted_probs, 0) - sorted_probs < top_p
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        choice = int(torch.multinomial(sorted_probs, 1, generator=generator))
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))
