"""What the law remembers between decisions, as a JSON-able dict with a ``version``.

Stored in ``status.memory`` by the operator and passed back on the next call, so a restarted
operator resumes where it stopped. A memory with another ``version`` (or none) is discarded and
the law starts from the profile's priors; the Decision then says so (``memory_reset``). Fields
added since version 1 are optional on read: an older version-1 memory loads with their defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

MEMORY_VERSION = 1
LEARNING_RATE = 0.3  # weight of one observation in the log-space EWMA of each correction
CORRECTION_BOUNDS = (0.33, 3.0)  # power and token corrections never run away on a bad sample
# The latency correction may have to cover a profile measured on other hardware (an H100 profile on a
# CPU replica is ~10-30x off): a 3x bound left the law blind to SLO violations it could see.
LATENCY_CORRECTION_BOUNDS = (0.1, 30.0)
# Shadow KL over the profile's: a router on other text can be several times worse (or better).
QUALITY_CORRECTION_BOUNDS = (0.1, 10.0)
# Replicas slower (or faster) than the profile, learned where queueing shows (see learning.py).
CAPACITY_CORRECTION_BOUNDS = (0.5, 3.0)
HISTORY_LIMIT = 64  # replica recommendations kept for the stabilization windows
_BOUNDED = {
    "latency_scale": LATENCY_CORRECTION_BOUNDS,
    "power_scale": CORRECTION_BOUNDS,
    "quality_scale": QUALITY_CORRECTION_BOUNDS,
    "capacity_scale": CAPACITY_CORRECTION_BOUNDS,
}


@dataclass(frozen=True)
class LawMemory:
    """The learned corrections, the recent recommendations and the clocks of the observed rules."""

    latency_scale: float = 1.0  # observed over predicted latency quantile, where queueing is negligible
    capacity_scale: float = 1.0  # > 1: replicas saturate earlier than the profile says
    power_scale: float = 1.0  # observed/profile dynamic power
    quality_scale: float = 1.0  # shadow-measured KL over the profile's KL at the same temperature
    tokens_per_request: float = 256.0  # generated tokens per request, learned from the token rate
    latency_error: float | None = None  # EWMA of |log(observed / predicted latency)|
    samples: int = 0  # latency observations learned from
    quality_samples: int = 0  # shadow windows learned from
    quality_loss_integral: float = 0.0  # ∫ quality loss (percent) dt since the memory began, percent·s
    quality_time_s: float = 0.0  # the time that integral covers
    last_time: float | None = None
    since: float | None = None  # when this memory started: a fresh law waits a full window before scaling down
    last_temperature: float | None = None
    temperature_since: float | None = None  # since when the temperature in force has been the same
    last_ready: int | None = None  # ready replicas at the last decision
    warm_since: float | None = None  # when a pod last turned ready while the law watched (its warm-up)
    scaled_down_at: float | None = None  # the last decision that removed replicas
    excursion_since: float | None = None  # since when the observed latency has been over target, None: it is not
    settled_since: float | None = None  # since when every pod has been ready, None: some are starting
    metrics_lost_at: float | None = None  # the last decision without latency or request rate, None: never
    metrics_known_since: float | None = None  # since when both have been known, None: missing now
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

    @property
    def quality_loss_percent_mean(self) -> float | None:
        """Time-averaged quality loss since the memory began; None before any time has passed."""
        return self.quality_loss_integral / self.quality_time_s if self.quality_time_s > 0 else None


def load_memory(memory: dict[str, Any] | None) -> tuple[LawMemory, str | None]:
    """Parse stored memory; returns (memory, why it was reset or None)."""
    if not memory:
        return LawMemory(), None
    version = memory.get("version")
    if version != MEMORY_VERSION:
        return LawMemory(), f"memory version {version!r} is not {MEMORY_VERSION}: reset to the profile's priors"
    try:
        return _parse(memory), None
    except (TypeError, ValueError) as problem:
        return LawMemory(), f"memory unreadable ({problem}): reset to the profile's priors"


def _parse(memory: dict[str, Any]) -> LawMemory:
    """Each known field converted to its type (absent → default); corrections clamped to their bounds."""
    defaults = LawMemory()
    values: dict[str, Any] = {}
    for item in fields(LawMemory):
        raw = memory.get(item.name)
        default = getattr(defaults, item.name)
        if item.name == "recommendations":
            values[item.name] = [(float(t), int(n)) for t, n in raw or []]
        elif raw is None:
            values[item.name] = default
        elif (isinstance(default, int) and not isinstance(default, bool)) or item.name == "last_ready":
            values[item.name] = int(raw)
        else:
            values[item.name] = float(raw)
    for name, bounds in _BOUNDED.items():
        values[name] = _bounded(values[name], bounds)
    values["tokens_per_request"] = max(1.0, values["tokens_per_request"])
    return LawMemory(**values)


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
