"""The report a run leaves in ``--report DIR``: PNG plots, ``summary.md``, ``summary.json`` and the raw series.

Plots (one PNG each, and all six stacked in ``overview.png``): offered and served load, the latency
quantile against the SLO, power against the budget (marked *estimated* when the runtime's power is
the model applied to busy time, as on a CPU), the routing temperature (status and pods), replicas
(desired and ready), and quality (loss in percent from the shadow KL, against the budget). Dashed lines mark the
burst and every decision that changed a knob.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: the report is written with no display
import matplotlib.pyplot as plt
import numpy as np

from thermostat_stack.summary import RunRecord, summarize

PANELS = ("load", "latency", "power", "temperature", "replicas", "quality")


def _series(run: RunRecord, attribute: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(s.t_s, getattr(s, attribute)) for s in run.samples if getattr(s, attribute) is not None]
    if not points:
        return np.array([]), np.array([])
    t, v = zip(*points, strict=True)
    return np.asarray(t, dtype=float), np.asarray(v, dtype=float)


def _rate(times: list[float], end_s: float, smooth_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Events per second, in one-second bins averaged over ``smooth_s``."""
    bins = np.arange(0.0, max(end_s, 1.0) + 1.0, 1.0)
    counts, _ = np.histogram(times, bins=bins)
    kernel = np.ones(int(smooth_s)) / smooth_s
    return bins[:-1], np.convolve(counts, kernel, mode="same")


def _plot_load(ax: Any, run: RunRecord) -> None:
    end = run.load.duration_s
    t, offered = _rate([a.time_s for a in run.load.arrivals], end)
    ax.plot(t, offered, label="offered", color="tab:gray")
    # Outcomes by the time they ended: a saturated replica shows as served load falling behind offered.
    for outcome, color in (("ok", "tab:green"), ("rejected", "tab:orange"), ("failed", "tab:red")):
        times = [r.sent_s + r.latency_s for r in run.stats.records if r.outcome == outcome]
        if times or outcome == "ok":
            ax.plot(*_rate(times, end), label=f"{outcome} (by completion)", color=color)
    ax.axhline(run.capacity.exact_rps, color="tab:blue", linestyle=":", label="1 replica at T=1")
    ax.axhline(
        run.capacity.tmin_rps, color="tab:purple", linestyle=":", label=f"1 replica at T_min={run.capacity.t_min:g}"
    )
    ax.set_ylabel("requests/s")


def _plot_latency(ax: Any, run: RunRecord) -> None:
    slo = run.spec.slo
    ax.plot(*_series(run, "latency_s"), label=f"p{slo.quantile * 100:g} over {slo.window_seconds}s", color="tab:blue")
    ax.axhline(slo.target_seconds, color="tab:red", linestyle="--", label="SLO")
    ax.set_ylabel("latency (s)")


def _plot_power(ax: Any, run: RunRecord) -> None:
    estimated = any(s.power_source == "estimate" for s in run.samples)
    ax.plot(*_series(run, "power_w"), color="tab:orange", label="power (estimated)" if estimated else "power")
    if run.spec.budget and run.spec.budget.power_watts:
        ax.axhline(run.spec.budget.power_watts, color="tab:red", linestyle="--", label="budget")
    ax.set_ylabel("watts" + (" (estimated)" if estimated else ""))


def _plot_temperature(ax: Any, run: RunRecord) -> None:
    ax.step(*_series(run, "temperature"), where="post", label="decided (status)", color="tab:purple")
    ax.plot(*_series(run, "pod_temperature"), label="in pods", color="tab:pink", alpha=0.7)
    operating = [(d.t_s, d.operating_temperature) for d in run.decisions if d.operating_temperature is not None]
    if operating:
        ax.step(*zip(*operating, strict=True), where="post", color="tab:gray", linestyle="--", label="operating point")
    ax.axhline(run.capacity.t_min, color="gray", linestyle=":", label="T_min")
    ax.set_ylabel("routing T")
    ax.set_ylim(0, 1.05)


def _plot_replicas(ax: Any, run: RunRecord) -> None:
    ax.step(*_series(run, "replicas"), where="post", label="desired", color="tab:blue")
    ax.step(*_series(run, "ready_replicas"), where="post", label="ready", color="tab:green")
    ax.set_ylabel("replicas")
    ax.set_ylim(0, run.spec.replicas.max + 0.5)


def _plot_quality(ax: Any, run: RunRecord) -> None:
    t, kl = _series(run, "quality_kl_nats")
    window = run.spec.slo.window_seconds
    ax.plot(t, 100 * np.expm1(kl), ".", color="tab:brown", label=f"shadow KL loss, {window}s window")
    budget = run.spec.quality.max_quality_loss_percent
    ax.axhline(budget, color="tab:red", linestyle="--", linewidth=1, label=f"budget {budget:g}%")
    ax.set_ylabel("quality loss (%)")


PLOTTERS = {
    "load": _plot_load,
    "latency": _plot_latency,
    "power": _plot_power,
    "temperature": _plot_temperature,
    "replicas": _plot_replicas,
    "quality": _plot_quality,
}


def _decorate(ax: Any, run: RunRecord) -> None:
    if run.load.burst_start_s is not None:
        ax.axvline(run.load.burst_start_s, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, run.load.duration_s)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=7)


def write_plots(run: RunRecord, directory: Path) -> list[Path]:
    """One PNG per panel and ``overview.png`` with all of them."""
    paths = []
    for panel in PANELS:
        fig, ax = plt.subplots(figsize=(8, 3))
        PLOTTERS[panel](ax, run)
        _decorate(ax, run)
        ax.set_xlabel("seconds from the start of the load")
        fig.tight_layout()
        paths.append(directory / f"{panel}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(8, 11), sharex=True)
    for ax, panel in zip(axes, PANELS, strict=True):
        PLOTTERS[panel](ax, run)
        _decorate(ax, run)
    axes[0].set_title(f"{run.namespace}/{run.name}: {run.load.name}", fontsize=10)
    axes[-1].set_xlabel("seconds from the start of the load")
    fig.tight_layout()
    paths.append(directory / "overview.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    return paths


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def slo_windows_text(summary: dict[str, Any], slo: Any) -> str:
    """ "met in 5 of 6 windows of 30s (83%)": a count of windows, never the attainment share read as one."""
    met, windows, share = summary.get("slo_windows_met"), summary["slo_windows"], summary["slo_attainment_windows"]
    if met is None or share is None:
        return f"unknown: no window of {slo.window_seconds}s had a reading"
    return f"met in {met} of {windows} windows of {slo.window_seconds}s ({share:.0%})"


def summary_markdown(run: RunRecord, summary: dict[str, Any]) -> str:
    """A readable summary: outcome, control, capacity, decisions."""
    slo = run.spec.slo
    lines = [
        f"# Thermostat local stack: {run.namespace}/{run.name}",
        "",
        f"Load: {run.load.description}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests (ok / rejected 429 / failed) | {summary['requests_total']} "
        f"({summary['requests_ok']} / {summary['requests_rejected']} / {summary['requests_failed']}) |",
        f"| the runtimes' own request counters (Prometheus) | {_fmt(summary['runtime_requests_total'])} |",
        f"| SLO: p{slo.quantile * 100:g} {slo.metric} <= {slo.target_seconds}s | {slo_windows_text(summary, slo)} |",
        f"| capacity of one replica at T=1 / at T_min={run.capacity.t_min:g} | {run.capacity.exact_rps:.3f} / "
        f"{run.capacity.tmin_rps:.3f} req/s (x{run.capacity.gain:.2f}, median of {len(run.capacity.ratios)} paired "
        f"rounds, x{run.capacity.spread[0]:.2f} to x{run.capacity.spread[1]:.2f}) |",
        f"| burst starts | {_fmt(summary['burst_start_s'], 's')} |",
        f"| first temperature drop / first scale-up | {_fmt(summary['first_temperature_drop_s'], 's')} / "
        f"{_fmt(summary['first_scale_up_s'], 's')} |",
        f"| lowest temperature / most replicas | {_fmt(summary['temperature_min'])} / "
        f"{_fmt(summary['replicas_max'])} |",
        f"| operating temperature / quality loss, time-averaged from the shadow KL (budget) | "
        f"{_fmt(summary['operating_temperature'])} / {_fmt(summary['quality_loss_percent_mean'], '%')} "
        f"({run.spec.quality.max_quality_loss_percent:g}%) |",
        f"| decisions | {summary['decisions']} (every {run.spec.behavior.period_seconds}s) |",
        f"| power source | {summary['power_source'] or 'n/a'}"
        f"{' (estimated: a model of busy time, not a measurement)' if summary['power_source'] == 'estimate' else ''} |",
        "",
        "![overview](overview.png)",
        "",
        f"## Decisions that changed the advice ({sum(d.changed for d in run.decisions)} of {len(run.decisions)})",
        "",
        "| t (s) | T | replicas | applied | observed latency | reason |",
        "|---|---|---|---|---|---|",
    ]
    for d in (d for d in run.decisions if d.changed):
        lines.append(
            f"| {d.t_s:.0f} | {d.routing_temperature:.2f} | {d.replicas} | {d.applied} | "
            f"{_fmt(d.observed_latency_s, 's')} | {d.reason} |"
        )
    if run.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in run.notes]]
    return "\n".join(lines) + "\n"


def write_report(run: RunRecord, directory: Path) -> dict[str, Any]:
    """Write every file of the report into ``directory``; returns the summary."""
    directory.mkdir(parents=True, exist_ok=True)
    summary = summarize(run)
    write_plots(run, directory)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (directory / "summary.md").write_text(summary_markdown(run, summary))
    series = {
        "samples": [asdict(s) for s in run.samples],
        "decisions": [asdict(d) for d in run.decisions],
        "events": run.events,
        "requests": [asdict(r) for r in run.stats.records],
        "final_status": run.final_status,
    }
    (directory / "run.json").write_text(json.dumps(series, indent=1) + "\n")
    return summary
