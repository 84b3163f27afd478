"""The live view: the loop as it runs, redrawn every second in the terminal with ``rich``.

One panel: time and phase of the load, request outcomes, the latency quantile against the SLO,
power against the budget (labelled *estimated* on a CPU, where it is a model of busy time), the
routing temperature, replicas, quality, and the latest decision with its reason.
"""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from thermostat_stack.recorder import Recorder, Sample


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _latency_row(recorder: Recorder, sample: Sample) -> Text:
    slo = recorder.spec.slo
    text = Text(f"{_fmt(sample.latency_s, '.2f', 's')} / SLO {slo.target_seconds:g}s (p{slo.quantile * 100:g})")
    if sample.latency_s is not None:
        text.stylize("red" if sample.latency_s > slo.target_seconds else "green")
    return text


def _power_row(recorder: Recorder, sample: Sample) -> str:
    budget = recorder.spec.budget.power_watts if recorder.spec.budget else None
    estimated = " (estimated)" if sample.power_source == "estimate" else ""
    return f"{_fmt(sample.power_w, '.1f', 'W')} / budget {_fmt(budget, '.0f', 'W')}{estimated}"


def render_view(recorder: Recorder, *, phase: str, notes: list[str]) -> Panel:
    """The panel for the latest sample."""
    sample = recorder.samples[-1] if recorder.samples else Sample(0.0, 0, 0, 0, 0, 0)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("time", f"{sample.t_s:.0f}s  ({phase})")
    table.add_row(
        "requests",
        f"sent {sample.sent}  ok {sample.ok}  rejected(429) {sample.rejected}  "
        f"failed {sample.failed}  in flight {sample.in_flight}",
    )
    table.add_row("latency", _latency_row(recorder, sample))
    table.add_row("power", _power_row(recorder, sample))
    table.add_row(
        "temperature", f"{_fmt(sample.temperature, '.2f')} decided, {_fmt(sample.pod_temperature, '.2f')} in pods"
    )
    table.add_row("replicas", f"{_fmt(sample.replicas, 'd')} desired, {_fmt(sample.ready_replicas, 'd')} ready")
    quality = None if sample.quality_agreement is None else 100 * (1 - sample.quality_agreement)
    table.add_row("quality loss", _fmt(quality, ".2f", " points"))
    last = next((d for d in reversed(recorder.decisions) if d.changed), None)
    latest = f"at {last.t_s:.0f}s: {last.reason}" if last else "-"
    table.add_row("decisions", f"{len(recorder.decisions)}; latest change {latest}")
    body = Group(table, Text("\n".join(notes[-4:]), style="dim"))
    return Panel(body, title=f"thermostat up: {recorder.namespace}/{recorder.name}", border_style="blue")
