"""``thermostat explain``: a RoutedModel's recent decisions as prose a person reads in a minute.

Pure: status (and decision records read from the operator's log) in, rich renderables out; the
clock is passed in. Runs of decisions that changed nothing (steady, idle, held, a guarded
scale-down) are summarised as one period, with how long it lasted and its newest reason, never as
twenty identical lines. A staged rollout's steps (``status.rollout.history``) follow, then the
savings ledger (``status.ledger_view``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.text import Text

from thermostat.api.status import DecisionRecord, RolloutPhase, RolloutStatus, RoutedModelStatus
from thermostat.control import rules
from thermostat.status.history import fold, is_news
from thermostat.status.ledger_view import Price, savings_view
from thermostat.status.savings import unix

# Rules under which nothing changed: consecutive ones make one "nothing changed" period.
QUIET_RULES = frozenset({rules.STEADY, rules.IDLE, rules.SCALE_DOWN_HELD, rules.METRICS_HOLD})
# A temperature move smaller than this, replicas unchanged, is a trim (the operating point following
# what shadow requests measure), told inside a quiet period rather than as a decision of its own.
TRIM = 0.01
OUTCOME_TEXT = {
    "Applied": "Applied.",
    "Unchanged": "",
    "Recommended": "Recommended only (mode Recommend): nothing was written.",
    "Held": "The settings in force were kept.",
    "NotApplied": "Not applied: another scaler or a user sets the replicas (see the Conflict condition).",
    "Failed": "The write was refused (see the Ready condition).",
}


def fold_records(records: Iterable[DecisionRecord]) -> list[DecisionRecord]:
    """Records as status keeps them (repeats folded), but unbounded: the log's complete trail."""
    folded: list[DecisionRecord] = []
    for record in records:
        if is_news(folded, record):
            folded.append(record)
        else:
            folded[-1] = fold(folded[-1], record)
    return folded


def _clock(time: str) -> str:
    return time[11:19] if len(time) >= 19 else time


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _ago(time: str, now: float) -> str:
    try:
        return f"{_span(max(0.0, now - unix(time)))} ago"
    except ValueError:
        return "at an unreadable time"


def temperature_text(value: float) -> str:
    """Two decimals, or four where two would hide the difference the ConfigMap carries."""
    return f"{value:.2f}" if round(value, 2) == round(value, 4) else f"{value:.4f}"


def headline(record: DecisionRecord) -> str:
    """What the decision did, in a few words."""
    before = record.before
    t0 = before.routing_temperature if before and before.routing_temperature is not None else None
    n0 = before.replicas if before and before.replicas is not None else None
    after = temperature_text(record.routing_temperature)
    t = f"{temperature_text(t0)} → {after}" if t0 is not None else after
    n = f"{n0} → {record.replicas}" if n0 is not None else f"{record.replicas}"
    if record.kind == "rollout":
        if t0 is not None and round(t0, 4) == round(record.routing_temperature, 4):
            return f"Rollout {record.rule or 'step'}: both tracks at temperature {after}"  # a router's rollout
        stable = f" (stable pods at {temperature_text(t0)})" if t0 is not None else ""
        return f"Rollout {record.rule or 'step'}: candidate temperature {after}{stable}"
    texts = {
        rules.SLO_EXCURSION: f"Latency excursion (near or over the SLO): temperature lowered {t} at once",
        rules.OPERATING_POINT: f"Temperature set {t}, the operating point (lowest energy within the quality budget)",
        rules.PREDICTED_MISS: f"Temperature lowered {t} ahead of a predicted SLO miss",
        rules.BUDGET_LIMIT: f"The power budget set temperature {t}, replicas {n}",
        rules.SCALE_UP: f"Scaled up {n} replicas",
        rules.SCALE_DOWN: f"Scaled down {n} replicas",
        rules.TEMPERATURE_RISE: f"Temperature raised {t} toward the operating point",
        rules.SCALE_DOWN_HELD: "Nothing changed: fewer replicas would do, but a guard keeps them",
        rules.STEADY: "Nothing changed: the settings are where the law wants them",
        rules.IDLE: "Nothing changed: no requests",
        rules.METRICS_HOLD: "Held: metrics unavailable, settings kept",
        rules.METRICS_REPLICAS: f"Metrics unavailable: replicas raised {n} (onMetricsUnavailable)",
    }
    return texts.get(record.rule or "", f"Decided temperature {t}, replicas {n}")


@dataclass(frozen=True)
class Period:
    """Consecutive decisions under which nothing changed."""

    records: tuple[DecisionRecord, ...]

    @property
    def runs(self) -> int:
        return sum(1 + r.repeats for r in self.records)

    @property
    def end(self) -> str:
        last = self.records[-1]
        return last.until or last.time


def is_trim(record: DecisionRecord) -> bool:
    """A small temperature move with the replicas unchanged, not the fast path's (see ``TRIM``)."""
    before = record.before
    if before is None or before.routing_temperature is None or record.rule in QUIET_RULES | {rules.SLO_EXCURSION}:
        return False
    moved = abs(record.routing_temperature - before.routing_temperature)
    return before.replicas == record.replicas and moved < TRIM


def is_quiet(record: DecisionRecord) -> bool:
    return record.kind == "control" and (record.rule in QUIET_RULES or is_trim(record))


def group(records: Sequence[DecisionRecord]) -> list[DecisionRecord | Period]:
    """Records, with consecutive quiet ones (see ``is_quiet``) gathered into periods."""
    out: list[DecisionRecord | Period] = []
    for record in records:
        quiet = is_quiet(record)
        if quiet and out and isinstance(out[-1], Period):
            out[-1] = Period((*out[-1].records, record))
        elif quiet:
            out.append(Period((record,)))
        else:
            out.append(record)
    return out


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _seen(record: DecisionRecord) -> str:
    """What the reason does not already say: the power, and the missing signals of a held decision."""
    seen = record.seen
    if seen is None:
        return ""
    parts = []
    if seen.power_watts is not None:
        parts.append(f"power {seen.power_watts:.0f} W")
    if seen.missing and record.outcome == "Held":
        parts.append("missing " + ", ".join(seen.missing))
    return "; ".join(parts)


# The law's reason restates the move the headline already gives ("temperature a→b (operating point c),
# replicas m→n") and, for temperature decisions, the replica plan; explain drops those parts.
_MOVE = re.compile(r"temperature [\d.]+→[\d.]+ \(operating point [\d.]+\), replicas \d+→\d+(; )?")
_PLAN = re.compile(r"(; )?plan \d+ replicas at T_op [\d.]+ \(floor [\d.]+\)")
REPLICA_RULES = frozenset({rules.SCALE_UP, rules.SCALE_DOWN, rules.SCALE_DOWN_HELD, rules.BUDGET_LIMIT})


def short_reason(record: DecisionRecord) -> str:
    """The law's reason without what the headline says already (unchanged when it has another shape)."""
    reason = _MOVE.sub("", record.reason)
    if record.rule not in REPLICA_RULES:
        reason = _PLAN.sub("", reason)
    return reason.replace(": ;", ";").rstrip(":; ").replace(": ; ", "; ")


def record_text(record: DecisionRecord, now: float) -> Text:
    """One decision: when, what, what it saw, why, what became of it, and how long it then stood."""
    text = Text()
    text.append(f"{_clock(record.time)} ({_ago(record.time, now)})  ", style="dim")
    text.append(headline(record) + ".", style="bold")
    text.append(f" Why: {short_reason(record)}.")
    seen = _seen(record)
    text.append(f" Seen: {seen}." if seen else "")
    outcome = OUTCOME_TEXT.get(str(record.outcome), "" if record.outcome is None else str(record.outcome))
    text.append(f" {outcome}" if outcome else "")
    if record.repeats:
        span = unix(record.until) - unix(record.time) if record.until else 0.0
        text.append(f" It stood for {_runs(record.repeats)} more ({_span(span)}).", style="italic")
    return text


def period_text(period: Period, now: float) -> Text:
    """A quiet period: its span, how many runs, which rules kept things as they were, the newest reason."""
    first, last = period.records[0], period.records[-1]
    counts: dict[str, int] = {}
    for record in period.records:
        label = headline(record).removeprefix("Nothing changed: ").removeprefix("Held: ")
        if is_trim(record):
            label = f"temperature trimmed by less than {TRIM:g}"
        counts[label] = counts.get(label, 0) + 1 + record.repeats
    try:
        span = _span(max(0.0, unix(period.end) - unix(first.time)))
    except ValueError:
        span = "?"
    why = "; ".join(f"{label} ({_runs(runs)})" for label, runs in counts.items())
    text = Text()
    when = _clock(first.time) if period.end == first.time else f"{_clock(first.time)}–{_clock(period.end)}"
    text.append(f"{when} ({_ago(period.end, now)})  ", style="dim")
    trimmed = any(is_trim(r) for r in period.records)
    what = "No replica change and no temperature move of 0.01 or more" if trimmed else "Nothing changed"
    text.append(f"{what} for {span}, {_runs(period.runs)}" if period.runs > 1 else f"{what} (1 run)", style="bold")
    text.append(f" at temperature {last.routing_temperature:.2f}, {last.replicas} replicas: {why}.")
    latest = last.model_copy(update={"reason": last.last_reason or last.reason})
    text.append(f" Latest: {short_reason(latest)}.")
    return text


SUMMARY_RULES = (  # (rule, singular, plural) in the order a reader asks about them
    (rules.SLO_EXCURSION, "fast-path temperature drop", "fast-path temperature drops"),
    (rules.PREDICTED_MISS, "drop ahead of a predicted miss", "drops ahead of a predicted miss"),
    (rules.BUDGET_LIMIT, "budget cut", "budget cuts"),
    (rules.SCALE_UP, "scale-up", "scale-ups"),
    (rules.SCALE_DOWN, "scale-down", "scale-downs"),
    (rules.TEMPERATURE_RISE, "rise toward the operating point", "rises toward the operating point"),
)


def summary(records: Sequence[DecisionRecord]) -> Text:
    """One sentence over the whole trail shown: its span, its runs, what changed how often, held runs."""
    runs = sum(1 + r.repeats for r in records)
    parts = []
    for rule, one, many in SUMMARY_RULES:
        n = sum(1 for r in records if r.rule == rule)
        if n:
            parts.append(f"{n} {one if n == 1 else many}")
    steps = sum(1 + r.repeats for r in records if r.kind == "rollout")
    if steps:
        parts.append(f"{steps} rollout step{'' if steps == 1 else 's'}")
    held = sum(1 + r.repeats for r in records if r.outcome == "Held")
    if held:
        parts.append(f"{_runs(held)} held for missing metrics")
    try:
        span = _span(unix(records[-1].until or records[-1].time) - unix(records[0].time))
    except ValueError:
        span = "?"
    changes = ", ".join(parts) if parts else "no change"
    return Text(f"Since {_clock(records[0].time)} ({span}, {_runs(runs)}): {changes}.")


def header(name: str, namespace: str, status: RoutedModelStatus) -> Text:
    """Who, the settings in force, and every condition that is not as it should be."""
    text = Text(f"RoutedModel {namespace}/{name}", style="bold")
    current, quality = status.current, status.quality
    if current and current.routing_temperature is not None:
        text.append(f": temperature {current.routing_temperature:.2f}")
        if quality and quality.operating_temperature is not None:
            text.append(f" (operating point {quality.operating_temperature:.2f})")
        text.append(f", {current.replicas} replicas ({current.ready_replicas or 0} ready)")
    good = {"Ready": "True", "SLOMet": "True", "WithinBudget": "True", "MetricsAvailable": "True",
            "Feasible": "True", "QualityWithinBudget": "True", "Conflict": "False"}  # fmt: skip
    for condition in status.conditions:
        if good.get(condition.type, condition.status) != condition.status:
            text.append(f"\n  {condition.type} {condition.status} ({condition.reason}): {condition.message}")
    return text


def explain(
    status: RoutedModelStatus | None,
    *,
    name: str,
    namespace: str,
    now: float,
    log_records: Sequence[DecisionRecord] | None = None,
    limit: int = 10,
    price: Price | None = None,
) -> RenderableType:
    """The whole explanation: header, recent decisions (from the log when given), savings."""
    status = status or RoutedModelStatus()
    parts: list[RenderableType] = [header(name, namespace, status)]
    records = fold_records(log_records) if log_records is not None else list(status.decisions)
    source = "the operator's log" if log_records is not None else "status"
    items = group(records)[-limit:]
    if not items:
        parts.append(Text("\nNo decision recorded yet (the operator has not completed a control run)."))
    else:
        parts.append(Text(f"\nRecent decisions, oldest first (from {source}):", style="bold"))
        parts.append(summary(records))
        for item in items:
            parts.append(period_text(item, now) if isinstance(item, Period) else record_text(item, now))
    if status.rollout is not None:
        parts.append(rollout_text(status.rollout, now, limit=limit))
    parts.append(savings_view(status.savings, price=price))
    return Group(*parts)


def rollout_text(rollout: RolloutStatus, now: float, *, limit: int = 10) -> Text:
    """The staged rollout: where it stands, then its steps (``history``), oldest first."""
    text = Text("\nRollout", style="bold")
    candidate = rollout.candidate_temperature
    if rollout.candidate_router is not None:
        text.append(f" of router {rollout.candidate_router} (stable {rollout.stable_router}): {rollout.phase}",
                    style="bold")  # fmt: skip
    else:
        what = f" of temperature {temperature_text(candidate)}" if candidate is not None else ""
        text.append(f"{what} (stable {temperature_text(rollout.stable_temperature)}): {rollout.phase}", style="bold")
    if rollout.phase in (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED):
        text.append(f", step {rollout.step}/{rollout.steps}, canary {rollout.canary_percent}% of the pods")
        text.append(f" ({', '.join(rollout.canary_pods)})" if rollout.canary_pods else "")
    text.append(f". {rollout.message}." if rollout.message else ".")
    analysis = rollout.last_analysis
    if analysis is not None:
        text.append(f"\n  Last analysis {_clock(analysis.time)} ({_ago(analysis.time, now)}): {analysis.result}")
        text.append(f", {analysis.message}." if analysis.message else ".")
    for step in rollout.history[-limit:]:
        text.append(f"\n  {_clock(step.time)} ({_ago(step.time, now)})  ", style="dim")
        text.append(f"{step.action}", style="bold")
        text.append(f" (canary {step.canary_percent}%): {step.reason}.")
    return text


def log_records(lines: Iterable[str], *, namespace: str, name: str) -> tuple[list[DecisionRecord], int]:
    """The decision records of one RoutedModel in the operator's JSON log, and how many lines were unreadable.

    Lines that are not JSON, or JSON without a ``decision``, are other log lines and are passed over;
    a ``decision`` that does not parse counts as unreadable.
    """
    records: list[DecisionRecord] = []
    unreadable = 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("decision"), dict):
            continue
        about = entry.get("object") or {}
        if about.get("namespace") != namespace or about.get("name") != name:
            continue
        try:
            records.append(DecisionRecord.model_validate(entry["decision"], strict=False))
        except ValueError:
            unreadable += 1
    return records, unreadable
