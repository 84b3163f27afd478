"""The one reader of the Azure trace CSV (``thermostat.sim.trace``), used by the simulator and the stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from thermostat.sim.trace import TraceError, load_azure_trace
from thermostat_stack.trace import read_trace

pytestmark = pytest.mark.fast


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_are_sorted_timed_from_the_first_and_seven_digit_fractions_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "ContextTokens,TIMESTAMP,GeneratedTokens,Extra\n"
        "20,2023-11-16 18:15:56.6815900,500,x\n"
        "374,2023-11-16 18:15:46.6805900,0,y\n",
    )
    trace = load_azure_trace(path)
    assert list(trace.arrival_s) == pytest.approx([0.0, 10.001], abs=1e-6)
    assert list(trace.context_tokens) == [374.0, 20.0]
    assert list(trace.generated_tokens) == [1.0, 500.0]


def test_the_stack_replays_exactly_what_the_simulator_reads(tmp_path: Path) -> None:
    rows = [f"2023-11-16 18:{15 + i // 60:02d}:{i % 60:02d}.5000000,{10 + i},{i % 3}" for i in range(0, 120, 7)]
    path = _write(tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(reversed(rows)) + "\n")
    trace, requests = load_azure_trace(path), read_trace(path)
    assert [r.offset_s for r in requests] == pytest.approx(list(trace.arrival_s))
    assert [r.context_tokens for r in requests] == list(trace.context_tokens)
    assert [r.generated_tokens for r in requests] == list(trace.generated_tokens)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,tokens\n1,2\n", "missing column"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,1,2\nnot a time,1,2\n", "line 3"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,many,2\n", "line 2"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,1\n", "line 2"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "no requests"),
    ],
)
def test_a_malformed_trace_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        load_azure_trace(_write(tmp_path, text))


def test_trace_halves_split_at_the_middle_and_start_at_zero() -> None:
    from thermostat.sim.trace import TraceError, synthetic_trace, trace_part

    trace = synthetic_trace(duration_s=600.0, seed=1)
    first, second = trace_part(trace, "first-half"), trace_part(trace, "second-half")
    assert len(first) + len(second) == len(trace)
    assert first.arrival_s.max() < trace.duration_s / 2 <= second.arrival_s.min() + trace.duration_s / 2
    assert second.arrival_s.min() >= 0.0
    assert trace_part(trace, "whole") is trace
    with pytest.raises(TraceError, match="--part"):
        trace_part(trace, "third")
