"""Paired, interleaved throughput measurement at T = 1 and T_min: the round order and the statistics.

On a machine whose cores other jobs share, throughput drifts by tens of percent within a minute,
more than what routing saves at batch 1. Measuring T = 1 first and T_min afterwards therefore
measures the neighbours' load as much as the routing. Instead, short rounds at the two temperatures
alternate on one runtime process, in the order T=1, T_min | T_min, T=1 | T=1, T_min ... (so drift that
is linear over two rounds cancels across pairs), and each pair of adjacent rounds gives one ratio of
throughputs, measured under nearly the same load. The gain of T_min over T = 1 is the median of these
paired ratios, with their spread reported alongside; capacity at T = 1 is pooled over all its rounds,
and capacity at T_min is that times the median ratio (the drift spoils each side's level, the paired
ratio much less).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Literal

Side = Literal["exact", "tmin"]


@dataclass(frozen=True)
class Round:
    """Requests sent one after another at one routing temperature: how many, tokens, wall seconds."""

    side: Side
    requests: int
    tokens: int
    elapsed_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed_s


def round_order(pairs: int) -> list[Side]:
    """The sides of ``2 * pairs`` rounds: each pair once at each side, the first side alternating."""
    if pairs < 1:
        raise ValueError(f"at least one pair of rounds is needed, got {pairs}")
    order: list[Side] = []
    for index in range(pairs):
        order += ["exact", "tmin"] if index % 2 == 0 else ["tmin", "exact"]
    return order


@dataclass(frozen=True)
class PairedThroughput:
    """Pooled throughput at T = 1 and the paired T_min / T = 1 throughput ratios."""

    exact_rps: float
    exact_tokens_per_s: float
    ratios: tuple[float, ...]

    @property
    def gain(self) -> float:
        """The median paired ratio: how much more T_min completes than T = 1 under the same load."""
        return statistics.median(self.ratios) if self.ratios else 1.0

    @property
    def spread(self) -> tuple[float, float]:
        """The smallest and largest paired ratio."""
        return (min(self.ratios), max(self.ratios)) if self.ratios else (1.0, 1.0)


def paired_throughput(rounds: list[Round]) -> PairedThroughput:
    """Statistics of rounds in :func:`round_order` (consecutive rounds pair up; T_min rounds may be absent)."""
    exact = [r for r in rounds if r.side == "exact"]
    if not exact:
        raise ValueError("no round at T = 1 to measure against")
    elapsed = sum(r.elapsed_s for r in exact)
    ratios: list[float] = []
    if any(r.side == "tmin" for r in rounds):
        if len(rounds) % 2:
            raise ValueError(f"rounds must come in pairs, got {len(rounds)}")
        for first, second in zip(rounds[::2], rounds[1::2], strict=True):
            if {first.side, second.side} != {"exact", "tmin"}:
                raise ValueError(f"a pair must hold one round at each temperature, got {first.side}, {second.side}")
            tmin, base = (first, second) if first.side == "tmin" else (second, first)
            ratios.append(tmin.rps / base.rps)
    return PairedThroughput(
        sum(r.requests for r in exact) / elapsed, sum(r.tokens for r in exact) / elapsed, tuple(ratios)
    )
