"""The runtime's routing profile as the law reads it: temperature → compute, throughput, quality.

A ``Profile`` is built from the profile JSON of DESIGN §3 (already validated against its schema by
``thermostat.profiles.load_profile``). It answers, for any routing temperature in ``[t_min, 1]``,
by linear interpolation between the measured (or assumed) points: the share of FLOPs executed, the
mean KL per token and the quality loss it means (``100 × (exp(KL) − 1)`` percent, DESIGN §3), the
top-1 agreement, and the decode throughput at a batch size. Pure: no I/O.

Throughput is read within physical bounds: at a batch size, a routed temperature is never slower than
exact (routing only removes work) nor faster than its FLOP saving allows (``exact / flops_fraction``).
A measured profile taken on a busy machine can break both (the committed CPU one has T = 0.65 at a
tenth of exact's speed); the bounds keep such noise from steering replicas.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class ProfileError(ValueError):
    """The profile is unusable; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class ProfilePoint:
    """One routing temperature's figures."""

    routing_temperature: float
    flops_fraction: float
    kl_nats: float  # mean per-token KL(exact || routed)
    top1_agreement: float
    tokens_per_s: tuple[tuple[int, float], ...]  # (batch size, decode tokens/s), sorted by batch


def quality_loss_percent(kl_nats: float) -> float:
    """Quality loss in percent from a mean per-token KL in nats: ``100 × (exp(KL) − 1)`` (DESIGN §3)."""
    return 100.0 * math.expm1(max(0.0, kl_nats))


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Piecewise-linear interpolation, clamped at both ends."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class Profile:
    """A routing profile: what the law and the simulator assume about one replica."""

    model: str
    device: str
    provenance: str
    t_min: float
    points: tuple[ProfilePoint, ...]
    sha256: str = ""

    def __post_init__(self) -> None:
        temps = [p.routing_temperature for p in self.points]
        if temps != sorted(temps) or len(set(temps)) != len(temps):
            raise ProfileError("profile points must be sorted by increasing routing_temperature, without repeats")
        if abs(temps[-1] - 1.0) > 1e-9:
            raise ProfileError("profile points must include routing_temperature 1.0 (exact)")
        if temps[0] > self.t_min + 1e-9:
            raise ProfileError(f"profile points must include t_min ({self.t_min}); the lowest is {temps[0]}")
        object.__setattr__(self, "_temps", tuple(temps))
        # Per-temperature batch tables, memoised: the law asks for the same few temperatures often.
        object.__setattr__(self, "_tables", {})

    @property
    def temperatures(self) -> tuple[float, ...]:
        """The profiled temperatures, increasing."""
        return self._temps  # type: ignore[attr-defined, no-any-return]

    @property
    def max_batch(self) -> int:
        """Largest batch size profiled at T = 1: the replica's batch limit."""
        return self.points[-1].tokens_per_s[-1][0]

    def flops_fraction(self, temperature: float) -> float:
        """Executed per-token FLOPs over exact's at ``temperature``."""
        return _interp(temperature, self.temperatures, [p.flops_fraction for p in self.points])

    def kl_nats(self, temperature: float) -> float:
        """Expected mean per-token KL(exact || routed) at ``temperature``."""
        return _interp(temperature, self.temperatures, [p.kl_nats for p in self.points])

    def quality_loss_percent(self, temperature: float, kl_scale: float = 1.0) -> float:
        """Expected quality loss in percent at ``temperature``, the KL scaled by a learned correction."""
        return quality_loss_percent(kl_scale * self.kl_nats(temperature))

    def top1_agreement(self, temperature: float) -> float:
        """Expected top-1 agreement with the exact model at ``temperature`` (reported beside the loss)."""
        return _interp(temperature, self.temperatures, [p.top1_agreement for p in self.points])

    def tokens_per_s(self, temperature: float, batch: float) -> float:
        """Decode throughput of one replica (tokens/s) at a batch size and temperature."""
        batches, rates = self.batch_table(temperature)
        if batch < batches[0]:
            return rates[0] * batch / batches[0]  # below the smallest batch, throughput is proportional
        return _interp(batch, batches, rates)

    def batch_table(self, temperature: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(batch sizes, decode tokens/s) at ``temperature``, interpolated between profiled points."""
        key = round(temperature, 6)
        tables: dict[float, tuple[tuple[float, ...], tuple[float, ...]]] = self._tables  # type: ignore[attr-defined]
        if key not in tables:
            batches = tuple(float(b) for b, _ in self.points[-1].tokens_per_s)
            exact = [self._rate_at(self.points[-1], b) for b in batches]
            ceiling = 1.0 / max(self.flops_fraction(key), 1e-6)
            rates = tuple(
                min(max(_interp(key, self.temperatures, [self._rate_at(p, b) for p in self.points]), e), e * ceiling)
                for b, e in zip(batches, exact, strict=True)
            )
            if len(tables) > 4096:  # bounded: temperatures come from a small grid in practice
                tables.clear()
            tables[key] = (batches, rates)
        return tables[key]

    @staticmethod
    def _rate_at(point: ProfilePoint, batch: float) -> float:
        batches = [float(b) for b, _ in point.tokens_per_s]
        rates = [r for _, r in point.tokens_per_s]
        if batch < batches[0]:
            return rates[0] * batch / batches[0]
        return _interp(batch, batches, rates)

    def time_fraction(self, temperature: float) -> float:
        """Time per token at full batch over exact's: how routing speeds a replica up."""
        top = float(self.max_batch)
        return self.tokens_per_s(1.0, top) / self.tokens_per_s(temperature, top)


def parse_profile(data: Mapping[str, Any], *, sha256: str = "") -> Profile:
    """Build a Profile from the profile JSON (a dict); raises ProfileError naming a bad field."""
    try:
        points = tuple(
            ProfilePoint(
                routing_temperature=float(p["routing_temperature"]),
                flops_fraction=float(p["flops_fraction"]),
                kl_nats=float(p["kl_nats"]),
                top1_agreement=float(p["top1_agreement"]),
                tokens_per_s=tuple(sorted((int(b), float(v)) for b, v in p["tokens_per_s"].items())),
            )
            for p in data["points"]
        )
        return Profile(
            model=str(data["model"]),
            device=str(data["device"]),
            provenance=str(data["provenance"]),
            t_min=float(data["t_min"]),
            points=points,
            sha256=sha256,
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise ProfileError(
            f"profile is missing or mistypes a field ({error!r}); check it against the schema"
        ) from error
