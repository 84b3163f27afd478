"""Request traces: the Azure LLM inference 2023 CSV, and a seeded synthetic generator.

A trace is three aligned arrays sorted by arrival: arrival time (s from the start), context
(prompt) tokens and generated tokens.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
REQUIRED_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
EPOCH = datetime(1970, 1, 1)


class TraceError(ValueError):
    """The trace file is unusable; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Trace:
    """Requests sorted by arrival time."""

    arrival_s: FloatArray
    context_tokens: FloatArray
    generated_tokens: FloatArray
    name: str = "trace"

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self.arrival_s) else 0.0

    def __len__(self) -> int:
        return len(self.arrival_s)


def load_azure_trace(path: str | Path) -> Trace:
    """Read a CSV with columns TIMESTAMP,ContextTokens,GeneratedTokens (Azure LLM inference 2023).

    The one reader of the format: ``thermostat simulate``, the benchmarks and the local stack's
    replay (``thermostat_stack.trace``) all go through it. Extra columns are ignored; a generated
    count below 1 counts as 1 (every request produces a token). :class:`TraceError` names the line.
    """
    file = Path(path)
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise TraceError(
                    f"{file}: missing column(s) {missing}; the first line must be the header "
                    f"{','.join(REQUIRED_COLUMNS)} (Azure trace format)"
                )
            rows = [_row(file, reader.line_num, record) for record in reader]
    except OSError as error:
        raise TraceError(f"cannot read trace {file}: {error}") from error
    if not rows:
        raise TraceError(f"{file}: no requests after the header")
    stamps, context, generated = (np.array(column) for column in zip(*rows, strict=True))
    order = np.argsort(stamps, kind="stable")
    stamps = stamps[order] - stamps[order][0]
    return Trace(stamps, context[order], np.maximum(generated[order], 1.0), name=file.name)


def _row(file: Path, line: int, record: dict[str, str]) -> tuple[float, float, float]:
    try:
        return _timestamp(record["TIMESTAMP"]), float(record["ContextTokens"]), float(record["GeneratedTokens"])
    except (ValueError, TypeError, AttributeError):
        values = [record.get(c) for c in REQUIRED_COLUMNS]
        raise TraceError(f"{file} line {line}: expected 'YYYY-MM-DD HH:MM:SS.fff,int,int', got {values}") from None


def _timestamp(text: str) -> float:
    # Python's ISO parser takes at most 6 fractional digits; the Azure trace has 7. Naive times are
    # counted as UTC so a daylight-saving change in the local zone never bends the trace.
    head, _, frac = text.strip().partition(".")
    moment = datetime.fromisoformat(head)
    value = moment.timestamp() if moment.tzinfo else (moment - EPOCH).total_seconds()
    return value + (float("0." + frac) if frac else 0.0)


TRACE_PARTS = ("whole", "first-half", "second-half")


def trace_part(trace: Trace, part: str) -> Trace:
    """The whole trace, or one half of its duration (re-timed to start at 0): tune on one, report the other."""
    if part not in TRACE_PARTS:
        raise TraceError(f"--part must be one of {', '.join(TRACE_PARTS)}, got {part!r}")
    if part == "whole":
        return trace
    middle = trace.duration_s / 2.0
    keep = trace.arrival_s < middle if part == "first-half" else trace.arrival_s >= middle
    start = 0.0 if part == "first-half" else middle
    return Trace(
        trace.arrival_s[keep] - start,
        trace.context_tokens[keep],
        trace.generated_tokens[keep],
        name=f"{trace.name} ({part})",
    )


def scale_rate(trace: Trace, factor: float, *, seed: int = 0) -> Trace:
    """Multiply the request rate by ``factor`` keeping the duration and the minute-scale shape.

    Each request is emitted ``floor(factor)`` times plus once more with probability
    ``factor - floor(factor)``; copies are jittered by up to 10 s so they do not arrive together.
    """
    if factor <= 0:
        raise TraceError(f"--rate-scale must be > 0, got {factor}")
    if factor == 1.0:
        return trace
    rng = np.random.default_rng(seed)
    whole = math.floor(factor)
    counts = np.full(len(trace), whole) + (rng.random(len(trace)) < factor - whole)
    index = np.repeat(np.arange(len(trace)), counts)
    jitter = rng.uniform(0.0, 10.0, len(index)) * (np.concatenate([np.arange(c) for c in counts]) > 0)
    arrival = np.clip(trace.arrival_s[index] + jitter, 0.0, trace.duration_s)
    order = np.argsort(arrival, kind="stable")
    return Trace(arrival[order], trace.context_tokens[index][order], trace.generated_tokens[index][order], trace.name)


def synthetic_trace(
    *,
    duration_s: float = 3600.0,
    mean_rate: float = 5.0,
    diurnal_amplitude: float = 0.3,
    bursts: tuple[tuple[float, float, float], ...] = ((1200.0, 120.0, 2.0),),
    flash_crowds: tuple[tuple[float, float, float], ...] = ((2700.0, 180.0, 3.0),),
    seed: int = 0,
) -> Trace:
    """Poisson arrivals with a diurnal shape (one cycle over the run), bursts and flash crowds.

    ``bursts``/``flash_crowds`` are (start s, length s, rate multiplier); a burst is a step, a flash
    crowd rises instantly and decays linearly. Token counts are lognormal, close to the Azure
    conversation trace's medians (context ~1000, generated ~130).
    """
    rng = np.random.default_rng(seed)
    grid = np.arange(0.0, duration_s, 1.0)
    rate = mean_rate * (1.0 + diurnal_amplitude * np.sin(2 * np.pi * grid / duration_s - np.pi / 2))
    for start, length, mult in bursts:
        rate[(grid >= start) & (grid < start + length)] *= mult
    for start, length, mult in flash_crowds:
        inside = (grid >= start) & (grid < start + length)
        rate[inside] *= 1.0 + (mult - 1.0) * (1.0 - (grid[inside] - start) / length)
    counts = rng.poisson(rate)
    arrival = np.repeat(grid, counts) + rng.random(int(counts.sum()))
    arrival.sort()
    n = len(arrival)
    context = np.clip(rng.lognormal(math.log(1000.0), 0.8, n), 1, 8000).round()
    generated = np.clip(rng.lognormal(math.log(130.0), 0.9, n), 1, 1000).round()
    return Trace(arrival, context, generated, name=f"synthetic(seed={seed})")
