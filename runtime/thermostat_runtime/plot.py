"""A PNG of the routed model's frontier: quality loss against compute saved (old profile beside), and
decode wall time saved per batch size and mode."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _loss(point: dict[str, Any]) -> float:
    return float(point.get("quality_loss_percent", 100 * math.expm1(point["kl_nats"])))


def plot_profile(profile: dict[str, Any], path: Path, old: dict[str, Any] | None = None) -> None:
    """Left: quality loss vs FLOPs saved (and ``old``'s frontier); right: decode time saved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for data, label, style in ((profile, "neuron routing", "o-"), (old, "layer routers (v1)", "s--")):
        if data is None:
            continue
        points = data["points"]
        left.plot([100 * (1 - p["flops_fraction"]) for p in points], [_loss(p) for p in points], style, label=label)
    left.axhline(1.0, color="grey", lw=0.8, ls=":")
    left.set_yscale("symlog", linthresh=1.0)
    left.set_xlabel("per-token FLOPs saved (%)")
    left.set_ylabel("quality loss (%) = 100 (exp KL - 1)")
    left.legend()
    points = [p for p in profile["points"] if p["routing_temperature"] < 1.0]
    for key, mode in (("time_fraction_by_batch", "per-token"), ("time_fraction_shared_by_batch", "shared")):
        for batch in sorted({b for p in points for b in p.get(key, {})}, key=int):
            rows = [p for p in points if batch in p.get(key, {})]
            right.plot([100 * (1 - p["flops_fraction"]) for p in rows], [100 * (1 - p[key][batch]) for p in rows],
                       "o-" if mode == "per-token" else "x--", label=f"batch {batch} {mode}")  # fmt: skip
    right.plot([0, 50], [0, 50], color="grey", lw=0.8, ls=":")
    right.set_xlabel("per-token FLOPs saved (%)")
    right.set_ylabel("decode wall time saved (%)")
    right.legend(fontsize=7)
    fig.suptitle(f"{profile['model']} routed, {profile['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
