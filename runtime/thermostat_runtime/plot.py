"""A PNG of the routed model's frontier: quality against compute and measured decode time."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_profile(profile: dict[str, Any], bench: list[dict[str, float]], path: Path) -> None:
    """Left: top-1 agreement vs FLOPs and batch-1 time saved; right: decode time saved per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = profile["points"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    agreement = [100 * p["top1_agreement"] for p in points]
    left.plot([100 * (1 - p["flops_fraction"]) for p in points], agreement, "o-", label="FLOPs saved")
    left.plot(
        [100 * (1 - p.get("time_fraction", 1.0)) for p in points],
        agreement,
        "s--",
        label="batch-1 time saved",
    )
    left.axhline(95, color="grey", lw=0.8, ls=":")
    left.set_xlabel("per-token compute saved (%)")
    left.set_ylabel("top-1 agreement with exact (%)")
    left.legend()
    for batch in sorted({int(r["batch"]) for r in bench}):
        rows = [r for r in bench if int(r["batch"]) == batch and r["routing_temperature"] < 1.0]
        right.plot(
            [100 * (1 - r["executed_fraction"]) for r in rows],
            [100 * (1 - r["time_fraction"]) for r in rows],
            "o-",
            label=f"batch {batch}",
        )
    right.plot([0, 60], [0, 60], color="grey", lw=0.8, ls=":")
    right.set_xlabel("decode FLOPs saved (%)")
    right.set_ylabel("decode wall time saved (%)")
    right.legend()
    fig.suptitle(f"{profile['model']} routed, {profile['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
