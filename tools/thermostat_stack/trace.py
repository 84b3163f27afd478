"""Trace replay: the Azure LLM inference trace format, time-compressed and capped to this machine.

The format is the Azure Public Dataset's (``TIMESTAMP,ContextTokens,GeneratedTokens``, one request
a row, timestamps like ``2023-11-16 18:15:46.6805900``). Replay keeps the trace's arrival pattern and
multiplies its rate by ``rate_scale`` (times are divided by it), and caps prompt and generated tokens
so requests fit a CPU replica. The default rate scale offers, on average, a fixed fraction of the
measured capacity of one replica at T = 1, so the trace's own peaks push past it. Replay can start
at an offset into the trace (in the trace's own seconds, before compression), since a trace's first
minutes are often quiet.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from thermostat_stack.scenarios import Arrival, OfferedLoad

TRACE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
DEFAULT_LOAD_FRACTION = 0.8


class TraceError(ValueError):
    """A trace file that cannot be replayed, with the reason and the expected format."""


@dataclass(frozen=True)
class TraceRequest:
    """One row: seconds after the first request, prompt and generated token counts."""

    offset_s: float
    context_tokens: int
    generated_tokens: int


def _parse_time(text: str) -> datetime:
    # Python's parser takes at most 6 fractional digits; the Azure trace writes 7.
    head, dot, fraction = text.strip().partition(".")
    return datetime.fromisoformat(f"{head}.{fraction[:6]}" if dot else head)


def read_trace(path: Path) -> list[TraceRequest]:
    """Rows of an Azure-format CSV trace, sorted by time; :class:`TraceError` names what is wrong."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise TraceError(f"cannot read trace {path}: {error}") from None
    if not rows or tuple(cell.strip() for cell in rows[0]) != TRACE_COLUMNS:
        raise TraceError(f"{path}: the first line must be the header {','.join(TRACE_COLUMNS)} (Azure trace format)")
    parsed: list[tuple[datetime, int, int]] = []
    for number, row in enumerate(rows[1:], start=2):
        try:
            parsed.append((_parse_time(row[0]), int(row[1]), int(row[2])))
        except (ValueError, IndexError):
            raise TraceError(f"{path} line {number}: expected 'YYYY-MM-DD HH:MM:SS.fff,int,int', got {row}") from None
    if not parsed:
        raise TraceError(f"{path}: no requests after the header")
    parsed.sort(key=lambda item: item[0])
    first = parsed[0][0]
    return [TraceRequest((t - first).total_seconds(), c, g) for t, c, g in parsed]


def trace_from(requests: list[TraceRequest], offset_s: float) -> list[TraceRequest]:
    """The requests from ``offset_s`` seconds of trace time on, with times counted from the offset."""
    if offset_s < 0:
        raise TraceError(f"--trace-offset must be >= 0 seconds, got {offset_s:g}")
    later = [TraceRequest(r.offset_s - offset_s, r.context_tokens, r.generated_tokens) for r in requests]
    later = [r for r in later if r.offset_s >= 0]
    if not later:
        raise TraceError(
            f"--trace-offset {offset_s:g}s is past the trace's last request (at {requests[-1].offset_s:.0f}s): "
            f"choose an offset below {requests[-1].offset_s:.0f}"
        )
    return later


def trace_mean_rps(requests: list[TraceRequest]) -> float:
    """The trace's own mean request rate."""
    span = requests[-1].offset_s - requests[0].offset_s
    return len(requests) / span if span > 0 else float(len(requests))


def default_rate_scale(requests: list[TraceRequest], capacity_exact_rps: float) -> float:
    """The rate scale at which the trace offers DEFAULT_LOAD_FRACTION of one replica's capacity at T = 1."""
    return DEFAULT_LOAD_FRACTION * capacity_exact_rps / trace_mean_rps(requests)


def trace_load(
    requests: list[TraceRequest],
    *,
    rate_scale: float,
    max_prompt_tokens: int,
    max_tokens: int,
    duration_s: float | None = None,
    name: str = "trace",
) -> OfferedLoad:
    """The trace compressed by ``rate_scale`` (>1 faster), capped, cut at ``duration_s`` of replay time."""
    if rate_scale <= 0:
        raise TraceError(f"--rate-scale must be positive, got {rate_scale}")
    if max_prompt_tokens < 1 or max_tokens < 1:
        raise TraceError("--max-prompt-tokens and --max-tokens must be at least 1")
    arrivals = []
    for request in requests:
        time_s = request.offset_s / rate_scale
        if duration_s is not None and time_s >= duration_s:
            break
        arrivals.append(
            Arrival(
                time_s,
                max(min(request.context_tokens, max_prompt_tokens), 1),
                max(min(request.generated_tokens, max_tokens), 1),
            )
        )
    total = duration_s if duration_s is not None else requests[-1].offset_s / rate_scale
    description = (
        f"{name}: {len(arrivals)} requests over {total:.0f}s (rate scale {rate_scale:.4g}), "
        f"prompts <= {max_prompt_tokens} tokens, <= {max_tokens} generated"
    )
    return OfferedLoad(name, tuple(arrivals), total, None, description)
