"""One control run's status, assembled in memory and written once (Karpenter's and KEDA's habit).

``build_status`` turns what a run saw and did into the next ``RoutedModelStatus``; ``status_patch``
makes the merge patch that writes it, with explicit nulls where a figure became unknown (a merge
patch that merely omitted it would leave yesterday's value standing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from thermostat.api.spec import RoutedModelSpec
from thermostat.api.status import Display, LawMemory, QualityStatus, RoutedModelStatus, Settings
from thermostat.api.status import Observation as StatusObservation
from thermostat.control.conditions import DIRECT_SCRAPE, ConditionType
from thermostat.control.profile import quality_loss_percent
from thermostat.control.signals import load_value, reading_value
from thermostat.control.types import Observation, Verdict
from thermostat.status.audit import decision_record, ledger_accrual, rollout_records
from thermostat.status.conditions import ready_verdict, set_conditions
from thermostat.status.display import format_latency, format_power
from thermostat.status.history import record_decision
from thermostat.status.outcome import RunOutcome
from thermostat.status.savings import accrue

ESTIMATE = "estimate"
# An interval longer than this many control periods is a gap (the operator was down): not accounted.
LEDGER_GAP_PERIODS = 3.0


def rfc3339(unix_s: float) -> str:
    """A Kubernetes timestamp (second precision, UTC)."""
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ratio(numerator: float | None, denominator: float | None, scale: float = 1.0) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None  # no traffic: energy per request is undefined, not zero
    return numerator / denominator * scale


def status_observation(observation: Observation) -> StatusObservation:
    """The observation as users read it: energy per request, quality loss in percent (and top-1 points)."""
    agreement = reading_value(observation.quality_agreement)
    kl = reading_value(observation.quality_kl_nats)
    rate, tokens = load_value(observation.request_rate), load_value(observation.token_rate)
    energy_rate = reading_value(observation.energy_rate_w)
    return StatusObservation(
        time=rfc3339(observation.time),
        latency_seconds=reading_value(observation.latency_s),
        request_rate=rate,
        token_rate=tokens,
        power_watts=reading_value(observation.power_w),
        power_source=observation.power_source,
        source=observation.metrics_source,
        energy_joules_per_request=_ratio(energy_rate, rate),
        energy_joules_per_1k_tokens=_ratio(energy_rate, tokens, 1000.0),
        quality_loss_percent=None if kl is None else round(quality_loss_percent(kl), 3),
        quality_loss_points=None if agreement is None else round(100.0 * (1.0 - agreement), 3),
        within_slo_ratio=_rounded(reading_value(observation.within_slo)),
        missing=sorted(f"{name}: {why}" for name, why in observation.missing_signals().items()),
    )


def _display(spec: RoutedModelSpec, observation: Observation | None) -> Display:
    latency = reading_value(observation.latency_s) if observation else None
    power = reading_value(observation.power_w) if observation else None
    estimated = bool(observation and observation.power_source == ESTIMATE)
    budget = spec.budget.power_watts if spec.budget else None
    return Display(
        latency=format_latency(latency, spec.slo.target_seconds),
        power=format_power(power, budget, estimated=estimated),
    )


def _mark_direct(verdicts: dict[str, Verdict], observation: Observation | None) -> None:
    """While Prometheus fails, MetricsAvailable says the figures come from the pods directly."""
    held = verdicts.get(ConditionType.METRICS_AVAILABLE)
    if observation is None or observation.metrics_source != "direct" or held is None:
        return
    message = f"Prometheus failing: read from the pods' /metrics; {held.message}"
    verdicts[ConditionType.METRICS_AVAILABLE] = Verdict(status=held.status, reason=DIRECT_SCRAPE, message=message)


def build_status(previous: RoutedModelStatus | None, spec: RoutedModelSpec, run: RunOutcome) -> RoutedModelStatus:
    """The next status: conditions updated by the conventions, the decision recorded when it is news."""
    previous = previous or RoutedModelStatus()
    now = rfc3339(run.now)
    verdicts: dict[str, Verdict] = {ConditionType.READY: ready_verdict(run.health)}
    decisions = list(previous.decisions)
    recommended = previous.recommended
    memory = previous.memory
    quality = previous.quality
    if run.decision is not None:
        quality = QualityStatus(
            operating_temperature=run.decision.operating_temperature,
            loss_percent_expected=_rounded(run.decision.quality_loss_percent),
            loss_percent_mean=_rounded(run.decision.quality_loss_percent_mean),
        )
        verdicts.update(run.decision.conditions)
        recommended = Settings(routing_temperature=run.decision.routing_temperature, replicas=run.decision.replicas)
        record = decision_record(run, spec, time=now)
        if record is not None:
            decisions = record_decision(decisions, record)
        memory = LawMemory(version=run.memory_version, state=run.decision.memory)
    for step in rollout_records(previous.rollout, run.rollout, replicas=run.current.replicas or 0):
        decisions = record_decision(decisions, step)
    verdicts.update(run.verdicts)
    _mark_direct(verdicts, run.observation)
    savings = previous.savings
    accrual = ledger_accrual(run)
    if accrual is not None:
        max_interval_s = LEDGER_GAP_PERIODS * spec.behavior.period_seconds
        savings = accrue(savings, accrual, now=run.now, max_interval_s=max_interval_s)
    return RoutedModelStatus(
        observed_generation=run.generation,
        conditions=set_conditions(previous.conditions, verdicts, now=now, generation=run.generation),
        observation=status_observation(run.observation) if run.observation else previous.observation,
        current=run.current,
        recommended=recommended,
        decisions=decisions,
        memory=memory,
        quality=quality,
        display=_display(spec, run.observation),
        savings=savings,
        rollout=run.rollout,
    )


def status_patch(status: RoutedModelStatus) -> dict[str, Any]:
    """The merge patch writing ``status`` whole: unknown figures become explicit nulls."""
    patch = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key in ("observation", "current", "recommended", "display"):
        part = getattr(status, key)
        if part is not None:
            patch[key] = part.model_dump(mode="json", by_alias=True, exclude_none=False)
    # A rollout's fields come and go (candidate, interval start): written whole, and null once it is gone.
    patch["rollout"] = (
        status.rollout.model_dump(mode="json", by_alias=True, exclude_none=False) if status.rollout else None
    )
    return patch


def parse_status(raw: Any) -> RoutedModelStatus | None:
    """The stored status, or None when there is none or it does not parse (an older format)."""
    if not raw:
        return None
    try:
        return RoutedModelStatus.model_validate(dict(raw), strict=False)
    except ValueError:
        return None
