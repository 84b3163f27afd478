"""The RoutedModel status: what the operator tells the user, and what it remembers between runs.

Conditions follow the Kubernetes API conventions (metav1.Condition). The control law's memory is
kept here too, with a ``version``, so a restarted operator resumes where it stopped; its contents
belong to ``thermostat.control`` and are stored as an opaque object.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from thermostat.api.spec import ApiModel, RoutingTemperature

MAX_DECISIONS = 20
MAX_SAVINGS_DAYS = 7
CAMEL_CASE_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class ConditionStatus(StrEnum):
    """metav1.ConditionStatus."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the RoutedModel's state, as in metav1.Condition."""

    type: str = Field(min_length=1, max_length=316, description="Condition type, e.g. Ready, SLOMet.")
    status: ConditionStatus = Field(strict=False, description="True, False or Unknown.")
    reason: str = Field(min_length=1, max_length=1024, pattern=CAMEL_CASE_REASON, description="CamelCase reason.")
    message: str = Field("", max_length=32768, description="What a person needs to know.")
    last_transition_time: str = Field(description="When status last flipped (RFC 3339).")
    observed_generation: int | None = Field(None, ge=0, description="Spec generation it was computed for.")


class Observation(ApiModel):
    """The last measurement the law decided on; a missing figure is absent, never zero."""

    time: str = Field(description="When it was measured (RFC 3339).")
    latency_seconds: float | None = Field(None, ge=0, description="The SLO's latency quantile, seconds.")
    request_rate: float | None = Field(None, ge=0, description="Offered requests per second (every response code).")
    token_rate: float | None = Field(None, ge=0, description="Generated tokens per second.")
    power_watts: float | None = Field(None, ge=0, description="GPU power over all replicas, watts.")
    power_source: str | None = Field(None, description="nvml, dcgm, or estimate (modelled, not measured).")
    source: str | None = Field(
        None, description="Where the figures came from: prometheus, or direct (the pods' /metrics, Prometheus failing)."
    )
    energy_joules_per_request: float | None = Field(None, ge=0, description="GPU energy per request, joules.")
    energy_joules_per_1k_tokens: float | None = Field(
        None, ge=0, alias="energyJoulesPer1kTokens", description="GPU energy per 1000 generated tokens, joules."
    )
    quality_loss_percent: float | None = Field(
        None, ge=0, description="Shadow-measured quality loss, percent: 100 × (exp(KL) − 1), KL per token in nats."
    )
    quality_loss_points: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Shadow-measured top-1 disagreement with the exact model, points (beside the loss).",
    )
    within_slo_ratio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of requests within the SLO target over the window, exact from the SLO bucket the "
        "pods add at start; absent while no pod has it.",
    )
    missing: list[str] = Field(default_factory=list, description="Signals that were missing or stale.")


class Settings(ApiModel):
    """A setting of the two knobs."""

    routing_temperature: RoutingTemperature | None = Field(None, description="Routing temperature.")
    replicas: int | None = Field(None, ge=0, description="Replica count.")
    ready_replicas: int | None = Field(None, ge=0, description="Replicas ready to serve.")


class DecisionKind(StrEnum):
    """What a decision record is about."""

    CONTROL = "control"  # the control law's period: temperature and replicas
    ROLLOUT = "rollout"  # a staged-rollout step (its settings are the canary's; rule names the step)


class DecisionOutcome(StrEnum):
    """What became of a decision."""

    APPLIED = "Applied"  # written: the settings changed
    UNCHANGED = "Unchanged"  # the law wants what is in force: nothing to write
    RECOMMENDED = "Recommended"  # mode Recommend: published, not applied
    HELD = "Held"  # metrics unavailable: the settings in force were kept
    NOT_APPLIED = "NotApplied"  # another scaler or a user owns the replicas (see the Conflict condition)
    FAILED = "Failed"  # the API server refused a write (see the Ready condition)


class DecisionSeen(ApiModel):
    """The part of the observation a decision rests on; a missing figure is absent, never zero."""

    latency_seconds: float | None = Field(None, ge=0, description="The SLO's latency quantile, seconds.")
    request_rate: float | None = Field(None, ge=0, description="Offered requests per second.")
    power_watts: float | None = Field(None, ge=0, description="GPU power over all replicas, watts.")
    missing: list[str] = Field(default_factory=list, description="Signals that were missing or stale.")


class DecisionRecord(ApiModel):
    """One control decision and why it was made; repeats of the same advice fold into it."""

    time: str = Field(description="When it was decided (RFC 3339).")
    kind: DecisionKind = Field(DecisionKind.CONTROL, strict=False, description="control, or rollout (a rollout step).")
    routing_temperature: RoutingTemperature = Field(description="Routing temperature decided.")
    replicas: int = Field(ge=0, description="Replica count decided.")
    reason: str = Field(description="Why, in words.")
    applied: bool = Field(description="Whether it was applied (false in Recommend mode or while held).")
    rule: str | None = Field(None, description="The rule that fired (CamelCase; docs/audit.md lists them).")
    outcome: DecisionOutcome | None = Field(None, strict=False, description="What became of the decision.")
    before: Settings | None = Field(None, description="The settings in force when it was decided.")
    seen: DecisionSeen | None = Field(None, description="What the decision saw.")
    repeats: int = Field(0, ge=0, description="Later runs that gave the same advice for the same rule.")
    until: str | None = Field(None, description="When the last of those repeats ran (RFC 3339).")
    last_reason: str | None = Field(None, description="The last repeat's reason (its figures are the newest).")


class LawMemory(ApiModel):
    """What the control law carries from one decision to the next."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=0, description="Format version; an unknown version resets the memory.")
    state: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="The law's own state (correction factors, stabilization windows); opaque to users.",
    )


class QualityStatus(ApiModel):
    """Quality against the budget: the steady operating point and the loss spent, in percent."""

    operating_temperature: RoutingTemperature | None = Field(
        None, description="The steady operating point: the lowest-energy temperature within maxQualityLossPercent."
    )
    loss_percent_expected: float | None = Field(
        None, ge=0, description="Expected quality loss at the recommended temperature (profile, shadow-corrected)."
    )
    loss_percent_mean: float | None = Field(
        None,
        ge=0,
        description="Time-averaged quality loss since the law's memory began (shadow-measured when it can be).",
    )


class SavingsPeriod(ApiModel):
    """Energy used against the exact-quality counterfactual over one day, or since creation."""

    day: str | None = Field(None, description="The UTC day (YYYY-MM-DD); absent for the since-creation total.")
    accounted_seconds: float = Field(0.0, ge=0, description="Time covered (both energies known).")
    unaccounted_seconds: float = Field(0.0, ge=0, description="Time not covered: metrics missing, held, or gaps.")
    energy_joules: float = Field(0.0, ge=0, description="GPU energy used, joules.")
    exact_energy_joules: float = Field(
        0.0, ge=0, description="Energy the same load would have used at exact quality (T = 1) with the replicas "
        "the law would then need, joules (an estimate).",
    )  # fmt: skip
    saved_joules: float = Field(0.0, description="exactEnergyJoules − energyJoules (negative: routing cost energy).")
    generated_tokens: float = Field(0.0, ge=0, description="Tokens generated meanwhile (the quality weights).")
    quality_loss_percent_mean: float = Field(
        0.0, ge=0, description="Quality spent: the mean loss per generated token, percent (profile, shadow-corrected)."
    )


class Savings(ApiModel):
    """The savings ledger: what routing and replica policy bought against serving at exact quality."""

    since: str = Field(description="When the ledger began (RFC 3339).")
    last_time: str = Field(description="When it last accrued (RFC 3339).")
    estimated: bool = Field(
        False, description="True when any energy counted came from the modelled power (source estimate)."
    )
    total: SavingsPeriod = Field(default_factory=SavingsPeriod, description="Since the ledger began.")
    days: list[SavingsPeriod] = Field(
        default_factory=list,
        max_length=MAX_SAVINGS_DAYS,
        description=f"The last {MAX_SAVINGS_DAYS} UTC days, newest last.",
    )


class Display(ApiModel):
    """Preformatted figures for `kubectl get` columns."""

    latency: str | None = Field(None, description="Latency quantile against the SLO, e.g. '0.52s/0.60s'.")
    power: str | None = Field(None, description="Power against the budget, e.g. '612W/1400W' ('~' = estimate).")


MAX_ROLLOUT_STEPS = 20


class RolloutPhase(StrEnum):
    """Where a staged rollout stands."""

    PROGRESSING = "Progressing"  # canary pods serve the candidate; analyses run
    PAUSED = "Paused"  # no analysis counts now (metrics missing, too few replicas, inconclusive limit)
    PROMOTED = "Promoted"  # every pod serves the candidate
    ROLLED_BACK = "RolledBack"  # the canary failed, or a person aborted: every pod serves stable


class TrackFigures(ApiModel):
    """One track's figures over an analysis interval; intervals at the analysis' confidence."""

    requests: float = Field(ge=0, description="Requests completed in the interval.")
    slo_share: float | None = Field(None, ge=0, le=1, description="Share of requests within the SLO target.")
    slo_share_interval: list[float] = Field(default_factory=list, description="Its Wilson interval [low, high].")
    error_rate: float | None = Field(None, ge=0, le=1, description="Share of requests answered with an error.")
    quality_loss_percent: float | None = Field(None, ge=0, description="Shadow-measured loss, percent.")
    quality_loss_interval: list[float] = Field(default_factory=list, description="Its interval [low, high], %.")
    shadow_tokens: float = Field(0, ge=0, description="Shadow tokens in the interval.")
    energy_joules_per_request: float | None = Field(None, ge=0, description="GPU energy per request, joules.")


class RolloutAnalysisRecord(ApiModel):
    """The last A/B analysis: canary against stable over the same interval."""

    time: str = Field(description="When it was judged (RFC 3339).")
    result: str = Field(description="Passed, Failed, Inconclusive or MetricsUnavailable.")
    message: str = Field(description="Why, in words.")
    interval_seconds: float = Field(ge=0, description="Length of the interval compared.")
    slo_share_exact: bool = Field(
        True, description="False when the SLO target is no histogram bucket and the share is interpolated."
    )
    stable: TrackFigures | None = Field(None, description="The stable pods' figures.")
    canary: TrackFigures | None = Field(None, description="The canary pods' figures.")


class RolloutStepRecord(ApiModel):
    """One step of a rollout as a decision record: when, what changed, why."""

    time: str = Field(description="When (RFC 3339).")
    action: str = Field(description="Started, Advanced, Promoted, RolledBack, Paused, Resumed or Superseded.")
    canary_percent: int = Field(ge=0, le=100, description="Canary share in percent of the pods after it.")
    reason: str = Field(description="Why, in words.")


class RolloutStatus(ApiModel):
    """A staged rollout of a new operating temperature or router image: kept in status so a restarted operator
    resumes it."""

    phase: RolloutPhase = Field(strict=False, description="Progressing, Paused, Promoted or RolledBack.")
    message: str = Field("", description="What is happening, in words.")
    started: str = Field(description="When the rollout began (RFC 3339).")
    stable_temperature: RoutingTemperature = Field(description="The promoted operating point stable pods serve.")
    candidate_temperature: RoutingTemperature | None = Field(None, description="The operating point staged.")
    step: int = Field(0, ge=0, description="Current step, 1-based (0: none in progress).")
    steps: int = Field(0, ge=0, description="Number of steps.")
    canary_percent: int = Field(0, ge=0, le=100, description="Canary share asked for now, percent of the pods.")
    canary_pods: list[str] = Field(default_factory=list, description="The pods on the canary track.")
    step_started: str | None = Field(None, description="When the current analysis interval began (RFC 3339).")
    pause_reason: str | None = Field(
        None, description="Why it is paused: PausedMetricsUnavailable, PausedInconclusive or PausedTooFewReplicas."
    )
    failures: int = Field(0, ge=0, description="Failed analyses so far.")
    inconclusive: int = Field(0, ge=0, description="Inconclusive analyses so far.")
    consecutive_errors: int = Field(0, ge=0, description="Analyses in a row without metrics.")
    rejected_temperature: RoutingTemperature | None = Field(
        None, description="The last candidate rolled back: not staged again until the operating point moves on."
    )
    stable_router: str | None = Field(
        None, description="A router rollout: the image the stable Deployment serves (unset: a temperature rollout)."
    )
    candidate_router: str | None = Field(
        None, description="A router rollout: the image the canary Deployment serves (spec.model.image)."
    )
    rejected_router: str | None = Field(
        None, description="The last router image rolled back: not staged again until spec.model.image changes."
    )
    last_analysis: RolloutAnalysisRecord | None = Field(None, description="The last A/B analysis.")
    history: list[RolloutStepRecord] = Field(
        default_factory=list, max_length=MAX_ROLLOUT_STEPS, description="The last rollout steps, newest last."
    )


class RoutedModelStatus(ApiModel):
    """What the operator observed, decided and remembers."""

    observed_generation: int | None = Field(None, ge=0, description="Spec generation last acted on.")
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="Ready, SLOMet, WithinBudget, MetricsAvailable, Feasible, QualityWithinBudget, Conflict, Rollout.",
    )
    observation: Observation | None = Field(None, description="The last observation.")
    current: Settings | None = Field(None, description="The settings in force.")
    recommended: Settings | None = Field(None, description="The settings the law recommends now.")
    decisions: list[DecisionRecord] = Field(
        default_factory=list,
        max_length=MAX_DECISIONS,
        description=f"The last {MAX_DECISIONS} decisions, newest last.",
    )
    memory: LawMemory | None = Field(None, description="The control law's memory.")
    quality: QualityStatus | None = Field(None, description="Quality against the budget.")
    display: Display | None = Field(None, description="Preformatted figures for `kubectl get`.")
    savings: Savings | None = Field(None, description="Energy used and saved against exact quality; quality spent.")
    rollout: RolloutStatus | None = Field(None, description="The staged rollout of the operating temperature.")
