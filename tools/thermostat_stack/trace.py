"""Trace replay: the Azure LLM inference trace format, time-compressed and capped to this machine.

The format is the Azure Public Dataset's (``TIMESTAMP,ContextTokens,GeneratedTokens``, one request
a row, timestamps like ``2023-11-16 18:15:46.6805900``), read by the simulator's reader
(:func:`thermostat.sim.trace.load_azure_trace`, the only one in the project). Replay keeps the
trace's arrival pattern and multiplies its rate by ``rate_scale`` (times are divided by it), and caps
prompt and generated tokens so requests fit a CPU replica. The default rate scale offers, on
average, a fixed fraction of the measured capacity of one replica at T = 1, so the trace's own peaks
push past it. Replay can start at an offset into the trace (in the trace's own seconds, before
compression), since a trace's first minutes are often quiet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from thermostat.sim.trace import TraceError, load_azure_trace
from thermostat_stack.scenarios import Arrival, OfferedLoad

__all__ = ["TraceError", "TraceRequest", "default_rate_scale", "read_trace", "trace_from", "trace_load"]

DEFAULT_LOAD_FRACTION = 0.8


@dataclass(frozen=True)
class TraceRequest:
    """One row: seconds after the first request, prompt and generated token counts."""

    offset_s: float
    context_tokens: int
    generated_tokens: int


def read_trace(path: Path) -> list[TraceRequest]:
    """Rows of an Azure-format CSV trace, sorted by time; :class:`TraceError` names what is wrong."""
    trace = load_azure_trace(path)
    columns = zip(trace.arrival_s, trace.context_tokens, trace.generated_tokens, strict=True)
    return [TraceRequest(float(offset), round(context), round(generated)) for offset, context, generated in columns]


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
