"""Short strings for the `kubectl get rm` columns: latency against the SLO, power against the budget."""

from __future__ import annotations

MISSING = "-"


def format_seconds(seconds: float) -> str:
    """Two decimals under 10 s, one above, e.g. ``0.52s`` or ``12.3s``."""
    return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"


def format_latency(latency_s: float | None, target_s: float) -> str:
    """``0.52s/0.60s``: the measured quantile over the target; ``-/0.60s`` when unknown."""
    measured = MISSING if latency_s is None else format_seconds(latency_s)
    return f"{measured}/{format_seconds(target_s)}"


def format_watts(watts: float) -> str:
    """Whole watts under 10 kW, kilowatts with one decimal above (``612W``, ``12.4kW``)."""
    return f"{watts:.0f}W" if watts < 10_000 else f"{watts / 1000:.1f}kW"


def format_power(power_w: float | None, budget_w: float | None, *, estimated: bool) -> str:
    """``612W/1400W``; ``~612W/1400W`` when modelled rather than measured; no budget → ``612W``."""
    measured = MISSING if power_w is None else ("~" if estimated else "") + format_watts(power_w)
    return measured if budget_w is None else f"{measured}/{format_watts(budget_w)}"
