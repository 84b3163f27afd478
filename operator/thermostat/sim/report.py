"""Results as people read them: the table, the JSON object, and plots over time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from thermostat.api.spec import RoutedModelSpec
from thermostat.sim.run import SimResult

JSON_FIELDS = (
    "slo_attainment_requests",
    "slo_attainment_windows",
    "requests_shed",
    "energy_kwh",
    "energy_j_per_request",
    "quality_loss_mean",
    "budget_violation_s",
    "replica_changes",
    "temperature_changes",
)
COLUMNS = (
    ("controller", "{}"),
    ("req in SLO", "{:.2%}"),
    ("windows in SLO", "{:.2%}"),
    ("shed", "{:.0f}"),
    ("energy kWh", "{:.3f}"),
    ("J/req", "{:.1f}"),
    ("vs hpa", "{}"),
    ("quality loss %", "{:.2f}"),
    ("budget viol. s", "{:.0f}"),
    ("replica chg", "{:.0f}"),
    ("T chg", "{:.0f}"),
)


class SpecError(ValueError):
    """The RoutedModel file is unusable; the message lists the problems."""


def load_spec(path: Path) -> RoutedModelSpec:
    """The spec of the first RoutedModel in a YAML file, checked as `thermostat validate` checks it."""
    from thermostat.api.manifests import check_routedmodel

    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, yaml.YAMLError) as error:
        raise SpecError(f"cannot read {path}: {error}") from error
    if not documents:
        raise SpecError(f"{path} holds no manifest; pass a RoutedModel YAML (see examples/)")
    problems = check_routedmodel(documents[0])
    if problems:
        raise SpecError(f"{path} is not a valid RoutedModel: " + "; ".join(str(p) for p in problems))
    return RoutedModelSpec.model_validate(documents[0]["spec"])


def table(results: dict[str, SimResult]) -> str:
    """A Markdown table, one row per controller."""
    hpa = results.get("hpa")
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, result in results.items():
        m = result.metrics
        ratio = f"{m['energy_kwh'] / hpa.metrics['energy_kwh']:.2f}x" if hpa and hpa.metrics["energy_kwh"] else "-"
        values: list[Any] = [
            name,
            m["slo_attainment_requests"],
            m["slo_attainment_windows"],
            m["requests_shed"],
            m["energy_kwh"],
            m["energy_j_per_request"],
            ratio,
            m["quality_loss_mean"],
            m["budget_violation_s"],
            m["replica_changes"],
            m["temperature_changes"],
        ]
        lines.append("| " + " | ".join(fmt.format(v) for (_, fmt), v in zip(COLUMNS, values, strict=True)) + " |")
    return "\n".join(lines)


def to_json(results: dict[str, SimResult], extra: dict[str, Any]) -> str:
    """The JSON object keyed by controller name (plus ``_run`` with the profile hash and settings)."""
    body: dict[str, Any] = {name: {k: r.metrics[k] for k in JSON_FIELDS} for name, r in results.items()}
    for name, r in results.items():
        body[name].update({k: v for k, v in r.metrics.items() if k not in JSON_FIELDS})
    body["_run"] = extra
    return json.dumps(body, indent=2, sort_keys=False)


def plot(results: dict[str, SimResult], spec: RoutedModelSpec, directory: Path) -> list[Path]:
    """One PNG per controller: load, latency quantile vs SLO, replicas, temperature, power vs budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, result in results.items():
        s = result.series
        minutes = [t / 60.0 for t in s["time"]]
        fig, axes = plt.subplots(5, 1, figsize=(10, 11), sharex=True)
        axes[0].plot(minutes, s["load"])
        axes[0].set_ylabel("load (req/s)")
        axes[1].plot(minutes, s["latency"], label=f"p{round(spec.slo.quantile * 100)} (as observed)")
        axes[1].axhline(spec.slo.target_seconds, color="red", linestyle="--", label="SLO")
        axes[1].set_ylabel("latency (s)")
        axes[1].set_ylim(0, spec.slo.target_seconds * 1.5)
        axes[1].legend(loc="upper right")
        axes[2].plot(minutes, s["replicas"], label="desired")
        axes[2].plot(minutes, s["ready"], label="ready")
        axes[2].set_ylabel("replicas")
        axes[2].legend(loc="upper right")
        axes[3].plot(minutes, s["temperature"])
        axes[3].set_ylabel("routing T")
        axes[3].set_ylim(0, 1.05)
        axes[4].plot(minutes, s["power"])
        if spec.budget is not None and spec.budget.power_watts is not None:
            axes[4].axhline(spec.budget.power_watts, color="red", linestyle="--", label="budget")
            axes[4].legend(loc="upper right")
        axes[4].set_ylabel("power (W)")
        axes[4].set_xlabel("minutes")
        fig.suptitle(f"{name}")
        fig.tight_layout()
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written
