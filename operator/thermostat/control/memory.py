"""What the law remembers between decisions, as a JSON-able dict with a ``version``.

Stored in ``status.memory`` by the operator and passed back on the next call, so a restarted
operator resumes where it stopped. A memory with another ``version`` (or none) is discarded and
the law starts from the profile's priors; the Decision then says so (``memory_reset``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

MEMORY_VERSION = 1
LEARNING_RATE = 0.3  # weight of one observation in the log-space EWMA of each correction
CORRECTION_BOUNDS = (0.33, 3.0)  # power and token corrections never run away on a bad sample
# The latency correction may have to cover a profile measured on other hardware (an H100 profile on a
# CPU replica is ~10-30x off): a 3x bound left the law blind to SLO violations it could see.
LATENCY_CORRECTION_BOUNDS = (0.1, 30.0)
HISTORY_LIMIT = 64  # replica recommendations kept for the stabilization windows


@dataclass(frozen=True)
class LawMemory:
    """The learned corrections and the recent recommendations."""

    latency_scale: float = 1.0  # observed over predicted latency quantile
    power_scale: float = 1.0  # observed/profile dynamic power
    tokens_per_request: float = 256.0  # generated tokens per request, learned from the token rate
    latency_error: float | None = None  # EWMA of |log(observed / predicted latency)|
    samples: int = 0  # observations learned from
    last_time: float | None = None
    since: float | None = None  # when this memory started: a fresh law waits a full window before scaling down
    last_temperature: float | None = None
    excursion_since: float | None = None  # since when the observed latency has been over target, None: it is not
    settled_since: float | None = None  # since when every pod has been ready, None: some are starting
    recommendations: list[tuple[float, int]] = field(default_factory=list)  # (time, replicas wanted)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form stored in status."""
        data = asdict(self)
        data["recommendations"] = [[t, n] for t, n in self.recommendations]
        return {"version": MEMORY_VERSION, **data}

    def remember(self, now: float, wanted: int, window_s: float) -> LawMemory:
        """Add a replica recommendation and drop those older than ``window_s``."""
        kept = [(t, n) for t, n in self.recommendations if now - t <= window_s and t <= now]
        kept.append((now, wanted))
        return replace(self, recommendations=kept[-HISTORY_LIMIT:])


def load_memory(memory: dict[str, Any] | None) -> tuple[LawMemory, str | None]:
    """Parse stored memory; returns (memory, why it was reset or None)."""
    if not memory:
        return LawMemory(), None
    version = memory.get("version")
    if version != MEMORY_VERSION:
        return LawMemory(), f"memory version {version!r} is not {MEMORY_VERSION}: reset to the profile's priors"
    try:
        recommendations = [(float(t), int(n)) for t, n in memory.get("recommendations", [])]
        error = memory.get("latency_error")
        last_time, last_t, since = memory.get("last_time"), memory.get("last_temperature"), memory.get("since")
        excursion, settled = memory.get("excursion_since"), memory.get("settled_since")
        return (
            LawMemory(
                latency_scale=_bounded(float(memory.get("latency_scale", 1.0)), LATENCY_CORRECTION_BOUNDS),
                power_scale=_bounded(float(memory.get("power_scale", 1.0))),
                tokens_per_request=max(1.0, float(memory.get("tokens_per_request", 256.0))),
                latency_error=None if error is None else float(error),
                samples=int(memory.get("samples", 0)),
                last_time=None if last_time is None else float(last_time),
                since=None if since is None else float(since),
                last_temperature=None if last_t is None else float(last_t),
                excursion_since=None if excursion is None else float(excursion),
                settled_since=None if settled is None else float(settled),
                recommendations=recommendations,
            ),
            None,
        )
    except (TypeError, ValueError) as problem:
        return LawMemory(), f"memory unreadable ({problem}): reset to the profile's priors"


def _bounded(value: float, bounds: tuple[float, float] = CORRECTION_BOUNDS) -> float:
    lo, hi = bounds
    return min(hi, max(lo, value)) if math.isfinite(value) else 1.0


def blend(
    current: float,
    observed_ratio: float,
    rate: float = LEARNING_RATE,
    bounds: tuple[float, float] = CORRECTION_BOUNDS,
) -> float:
    """Move a multiplicative correction toward ``current × observed_ratio`` in log space."""
    if observed_ratio <= 0 or not math.isfinite(observed_ratio):
        return current
    return _bounded(current * math.exp(rate * math.log(observed_ratio)), bounds)
