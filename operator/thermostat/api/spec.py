"""The RoutedModel spec: what a platform team asks of Thermostat (DESIGN §2).

These pydantic models are the single source of truth for the API: the CRD's OpenAPI schema, its
``kubectl explain`` text and its CEL rules are generated from them (``thermostat crd``). Field names
are camelCase on the wire (aliases) and snake_case in Python. Every field has a description, units sit
in names (``targetSeconds``, ``powerWatts``), and defaults are what a team would pick first.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from thermostat.api.rules import CelRule, RuleCheckedModel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# The routing temperature scale of DESIGN §3: (0, 1], 1 = exact (routing bypassed).
RoutingTemperature = Annotated[float, Field(gt=0.0, le=1.0)]
# A canary share in percent of the pods: some, never none nor all.
CanaryPercent = Annotated[int, Field(gt=0, lt=100)]


class ApiModel(RuleCheckedModel):
    """Common settings: camelCase on the wire, unknown fields refused, strict types."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        use_enum_values=True,
        validate_default=True,
    )


class Mode(StrEnum):
    """Whether the operator acts or only advises."""

    ENFORCE = "Enforce"
    RECOMMEND = "Recommend"


class SloMetric(StrEnum):
    """Which latency the SLO is about."""

    REQUEST_LATENCY = "RequestLatency"
    TIME_TO_FIRST_TOKEN = "TimeToFirstToken"
    TIME_PER_OUTPUT_TOKEN = "TimePerOutputToken"


class Priority(StrEnum):
    """Which objective wins when the SLO and the budget cannot both hold."""

    SLO = "SLO"
    BUDGET = "Budget"


class MetricsUnavailableAction(StrEnum):
    """What to do while the metrics needed to decide are missing or stale."""

    HOLD = "Hold"
    REPLICAS = "Replicas"


class PowerSource(StrEnum):
    """Where GPU power and energy are read from."""

    RUNTIME = "Runtime"
    DCGM = "DCGM"


class MetricsPreset(StrEnum):
    """Which server's series the pods export: the queries and the knobs that follow from it."""

    THERMOSTAT = "Thermostat"  # thermostat-runtime: every signal, the routing knob, NVML power
    VLLM = "vLLM"  # stock vLLM: replicas only (no routing knob), power from DCGM, capacity learned online


class GpuResources(ApiModel):
    """Compute resources of one runtime pod."""

    gpus: int = Field(1, ge=0, le=16, description="GPUs per pod (0 runs on CPU, for tests and laptops).")
    gpu_resource_name: str = Field(
        "nvidia.com/gpu", min_length=1, description="Extended resource name of the GPU in the cluster."
    )
    cpu: str | None = Field(None, description="CPU request and limit, a Kubernetes quantity such as '4'.")
    memory: str | None = Field(None, description="Memory request and limit, a quantity such as '16Gi'.")


class EnvVar(ApiModel):
    """A plain environment variable for the runtime container."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable name.")
    value: str = Field("", description="Variable value.")


class RuntimeSettings(ApiModel):
    """Limits of `thermostat-runtime serve` in each pod; an unset field keeps the runtime's default."""

    max_batch: int | None = Field(
        None, ge=1, le=1024, description="Sequences per forward step (`--max-batch`; runtime default 8)."
    )
    max_queue: int | None = Field(
        None,
        ge=0,
        le=100000,
        description="Requests waiting beyond the batch; more are refused with 429 (`--max-queue`; default 64).",
    )
    max_tokens_limit: int | None = Field(
        None,
        ge=1,
        le=1000000,
        description="Largest `max_tokens` a request may ask for (`--max-tokens-limit`; default 512).",
    )
    max_prompt_tokens: int | None = Field(
        None, ge=1, le=1000000, description="Longest prompt accepted, in tokens (`--max-prompt-tokens`; default 2048)."
    )


class ModelSource(ApiModel):
    """The runtime pods Thermostat creates and owns: image, model, resources, pod settings."""

    image: str = Field(min_length=1, description="Container image that runs `thermostat-runtime serve`.")
    served_model_name: str = Field(
        "SmolLM2-135M-Instruct",
        min_length=1,
        description="Name the OpenAI-compatible API serves the model under (`model` in requests).",
    )
    model_path: str | None = Field(
        None, description="Path of the GGUF model file inside the image; the runtime's default when unset."
    )
    port: int = Field(8000, ge=1, le=65535, description="Container port of the HTTP API and /metrics.")
    resources: GpuResources = Field(default_factory=GpuResources, description="GPU, CPU and memory per pod.")
    max_request_seconds: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Longest generation a request may take; pods get at least this long to drain.",
    )
    startup_seconds: int = Field(
        600, ge=10, le=7200, description="How long a pod may take to load the model before it is restarted."
    )
    runtime: RuntimeSettings = Field(
        default_factory=RuntimeSettings, description="Batch, queue and token limits of the runtime server."
    )
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment variables.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pods must match.")
    pod_labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the pods.")
    pod_annotations: dict[str, str] = Field(default_factory=dict, description="Extra annotations on the pods.")
    priority_class_name: str | None = Field(None, description="PriorityClass of the pods.")
    image_pull_secrets: list[str] = Field(default_factory=list, description="Names of Secrets used to pull the image.")


class TargetRef(ApiModel):
    """An existing Deployment running a compatible runtime, driven in place (drop-in mode)."""

    api_version: str = Field("apps/v1", pattern=r"^apps/v1$", description="API version; only apps/v1.")
    kind: str = Field("Deployment", pattern=r"^Deployment$", description="Kind; only Deployment.")
    name: str = Field(min_length=1, max_length=253, pattern=DNS_LABEL, description="Deployment name.")
    routing_config_map: str | None = Field(
        None,
        description="ConfigMap the pods read their routing temperature from; `<routedmodel>-routing` when unset.",
    )


class LatencySlo(ApiModel):
    """The latency objective: a quantile of a latency metric over a window stays under a target."""

    metric: SloMetric = Field(
        SloMetric.REQUEST_LATENCY, strict=False, description="Which latency the objective bounds."
    )
    quantile: float = Field(0.95, gt=0.0, lt=1.0, description="Quantile, in (0, 1), e.g. 0.95 for p95.")
    target_seconds: float = Field(gt=0.0, le=3600.0, description="The quantile must stay at or below this.")
    window_seconds: int = Field(60, ge=15, le=3600, description="Window the quantile is measured over (PromQL range).")
    margin_fraction: float = Field(
        0.1, ge=0.0, lt=0.9, description="Headroom the law keeps: it plans for target × (1 − margin)."
    )


class Budget(ApiModel):
    """Power and energy limits for the whole RoutedModel."""

    cel_rules = (
        CelRule(
            rule="has(self.powerWatts) || has(self.energyJoulesPerRequest) || has(self.energyJoulesPer1kTokens)",
            message="budget needs at least one limit: powerWatts, energyJoulesPerRequest or "
            "energyJoulesPer1kTokens (omit budget for none)",
            check=lambda b: any(
                v is not None for v in (b.power_watts, b.energy_joules_per_request, b.energy_joules_per_1k_tokens)
            ),
        ),
    )

    power_watts: float | None = Field(None, gt=0, description="GPU power cap summed over all replicas, in watts.")
    energy_joules_per_request: float | None = Field(
        None, gt=0, description="Largest GPU energy per completed request, in joules."
    )
    energy_joules_per_1k_tokens: float | None = Field(
        None,
        gt=0,
        alias="energyJoulesPer1kTokens",
        description="Largest GPU energy per 1000 generated tokens, in joules.",
    )
    priority: Priority = Field(
        Priority.SLO, strict=False, description="What wins when the SLO and the budget cannot both hold: SLO or Budget."
    )
    reserve_fraction: float = Field(
        0.05, ge=0.0, lt=0.5, description="Headroom kept under each limit: the law plans for limit × (1 − reserve)."
    )


class Quality(ApiModel):
    """How far the routing temperature may go to save compute, and how quality is measured online.

    Quality loss is ``100 × (exp(KL) − 1)`` percent, KL the mean per-token KL(exact ‖ routed) in nats
    (DESIGN §3). The steady operating point is the lowest-energy temperature whose loss fits
    ``maxQualityLossPercent``; ``minRoutingTemperature`` is the floor used only while the SLO is at risk.
    """

    cel_rules = (
        CelRule(
            rule="!has(self.minRoutingTemperature) || !has(self.maxRoutingTemperature) "
            "|| self.minRoutingTemperature <= self.maxRoutingTemperature",
            message="quality.minRoutingTemperature must not exceed quality.maxRoutingTemperature",
            check=lambda q: q.min_routing_temperature is None or q.min_routing_temperature <= q.max_routing_temperature,
            field_path=".minRoutingTemperature",
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _removed_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "maxQualityLossPoints" in data:
            raise ValueError(
                "quality.maxQualityLossPoints was removed (an alpha field, top-1 points); set "
                "quality.maxQualityLossPercent instead: the steady-state budget in percent of quality loss, "
                "100 × (exp(KL) − 1), default 1.0"
            )
        return data

    min_routing_temperature: RoutingTemperature | None = Field(
        None,
        description="Lowest routing temperature allowed, in (0, 1], used only while the SLO is at risk (a burst, "
        "pods starting); the runtime's T_min when unset.",
    )
    max_routing_temperature: RoutingTemperature = Field(
        1.0, description="Highest routing temperature used, in (0, 1]; 1 is exact (no routing)."
    )
    max_quality_loss_percent: float = Field(
        1.0,
        ge=0.0,
        le=100.0,
        description="Steady-state quality budget: largest quality loss, in percent (100 × (exp(KL) − 1), KL the "
        "mean per-token KL to the exact model), at the operating point. 0 serves exactly except while the SLO is "
        "at risk.",
    )
    shadow_fraction: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="Share of requests also run on the exact model to measure quality online (each costs about one "
        "more request's compute); 0 trusts the profile alone.",
    )


class ReplicaBounds(ApiModel):
    """How many runtime pods the operator may run."""

    cel_rules = (
        CelRule(
            rule="self.min <= self.max",
            message="replicas.min must not exceed replicas.max",
            check=lambda r: r.min <= r.max,
            field_path=".min",
        ),
    )

    min: int = Field(1, ge=1, le=1000, description="Fewest replicas; the operator never goes below.")
    max: int = Field(ge=1, le=1000, description="Most replicas; the operator never goes above.")
    capacity_hint_tokens_per_second: float | None = Field(
        None,
        gt=0,
        le=1e7,
        description="Generated tokens per second one replica sustains at full batch (e.g. the output token "
        "throughput of `vllm bench serve`): the starting guess of a law without a routing profile (metrics.preset "
        "vLLM), corrected online. Unset: a guess that only evidence can lower replicas from.",
    )


class ScalingRules(ApiModel):
    """Stabilization and step limit of replica changes in one direction."""

    stabilization_window_seconds: int = Field(
        0, ge=0, le=3600, description="A change must be wanted this long before it is made."
    )
    max_step_replicas: int = Field(4, ge=1, le=1000, description="Most replicas added or removed in one step.")


class MetricsUnavailable(ApiModel):
    """The rule applied while the metrics needed to decide are missing or stale."""

    cel_rules = (
        CelRule(
            rule="self.action != 'Replicas' || has(self.replicas)",
            message="onMetricsUnavailable.replicas is required when action is Replicas",
            check=lambda m: m.action != MetricsUnavailableAction.REPLICAS or m.replicas is not None,
            field_path=".replicas",
        ),
    )

    action: MetricsUnavailableAction = Field(
        MetricsUnavailableAction.HOLD,
        strict=False,
        description="Hold: keep the current settings. Replicas: run at least `replicas`. Never scales down.",
    )
    replicas: int | None = Field(None, ge=1, le=1000, description="Replicas to run at least, for Replicas.")


class Behavior(ApiModel):
    """How fast and how often the operator acts."""

    period_seconds: int = Field(15, ge=1, le=600, description="Time between two control decisions.")
    scale_up: ScalingRules = Field(
        default_factory=lambda: ScalingRules(stabilization_window_seconds=0, max_step_replicas=4),
        description="Limits on adding replicas.",
    )
    scale_down: ScalingRules = Field(
        default_factory=lambda: ScalingRules(stabilization_window_seconds=300, max_step_replicas=1),
        description="Limits on removing replicas.",
    )
    max_temperature_step_up: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="Largest rise of the routing temperature in one period (drops are never limited).",
    )
    metrics_max_age_seconds: int = Field(60, ge=5, le=3600, description="A sample older than this counts as missing.")
    on_metrics_unavailable: MetricsUnavailable = Field(
        default_factory=MetricsUnavailable,
        description="What to do while metrics are missing or stale (default Hold).",
    )


class SecretKeyRef(ApiModel):
    """A Secret in the RoutedModel's namespace holding Prometheus credentials."""

    name: str = Field(min_length=1, pattern=DNS_LABEL, description="Secret name.")


class PrometheusSource(ApiModel):
    """Where and how to query Prometheus."""

    url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Prometheus base URL; the operator's THERMOSTAT_PROMETHEUS_URL when unset.",
    )
    auth_secret_ref: SecretKeyRef | None = Field(
        None,
        description="Secret with keys `token` (bearer) or `username`/`password`, and optional `ca.crt`.",
    )
    insecure_skip_verify: bool = Field(False, description="Skip TLS verification (testing only).")
    timeout_seconds: float = Field(5.0, gt=0, le=60, description="Timeout of one query.")


class QueryOverrides(ApiModel):
    """PromQL templates replacing the defaults of docs/metrics.md; `{selector}` and `{window}` are filled in."""

    latency: str | None = Field(None, description="Latency quantile, in seconds.")
    request_rate: str | None = Field(None, description="Offered requests per second (every response code).")
    power: str | None = Field(None, description="GPU power summed over the pods, in watts.")
    energy_rate: str | None = Field(None, description="GPU energy per second summed over the pods, in watts.")
    token_rate: str | None = Field(None, description="Generated tokens per second.")
    quality: str | None = Field(None, description="Shadow top-1 agreement, a ratio in [0, 1].")


class MetricsSpec(ApiModel):
    """Where observations come from."""

    cel_rules = (
        CelRule(
            rule="!has(self.preset) || self.preset != 'vLLM' || !has(self.powerSource) || self.powerSource == 'DCGM'",
            message="metrics.preset vLLM has no runtime power series: set metrics.powerSource to DCGM or leave it "
            "unset",
            check=lambda m: m.preset != MetricsPreset.VLLM or m.power_source in (None, PowerSource.DCGM),
            field_path=".powerSource",
        ),
    )

    prometheus: PrometheusSource = Field(default_factory=PrometheusSource, description="The Prometheus to query.")
    preset: MetricsPreset = Field(
        MetricsPreset.THERMOSTAT,
        strict=False,
        description="Which server the pods run. Thermostat: thermostat-runtime series, the routing knob. vLLM: stock "
        "vLLM's `vllm:` series, replicas only (no routing knob), power from DCGM, capacity learned online.",
    )
    power_source: PowerSource | None = Field(
        None,
        strict=False,
        description="Runtime: the runtime pods' NVML series. DCGM: the DCGM exporter's series, joined to the pods by "
        "their namespace and pod labels. Unset: Runtime for the Thermostat preset, DCGM for vLLM.",
    )
    queries: QueryOverrides = Field(default_factory=QueryOverrides, description="PromQL overrides.")

    @property
    def effective_power_source(self) -> PowerSource:
        """The power source in force: the spec's, else the preset's."""
        if self.power_source is not None:
            return PowerSource(self.power_source)
        return PowerSource.DCGM if self.preset == MetricsPreset.VLLM else PowerSource.RUNTIME

    @property
    def routing_knob(self) -> bool:
        """Whether the pods read a routing temperature (only thermostat-runtime does)."""
        return bool(self.preset == MetricsPreset.THERMOSTAT)


class RolloutAnalysis(ApiModel):
    """How a canary is judged against the stable pods over one analysis interval (an A/B test)."""

    interval_seconds: int = Field(
        300, ge=30, le=86400, description="Length of one analysis: canary and stable are compared over it."
    )
    confidence: float = Field(
        0.95, ge=0.5, lt=1.0, description="Confidence of the intervals (Wilson for shares, normal for quality)."
    )
    min_requests: int = Field(
        200, ge=10, le=1000000, description="Requests each track must complete in an interval, else inconclusive."
    )
    min_shadow_tokens: int = Field(
        2000, ge=10, le=100000000, description="Shadow tokens the canary must have in an interval, else inconclusive."
    )
    slo_tolerance_points: float = Field(
        2.0,
        ge=0.0,
        le=50.0,
        description="The canary may serve at most this many points fewer requests within the SLO than stable.",
    )
    error_tolerance_points: float = Field(
        1.0, ge=0.0, le=50.0, description="The canary's error rate may exceed stable's by at most this many points."
    )
    failure_limit: int = Field(
        0, ge=0, le=100, description="Failed analyses tolerated; one more rolls back (Argo Rollouts' failureLimit)."
    )
    inconclusive_limit: int = Field(
        2,
        ge=0,
        le=100,
        description="Inconclusive analyses tolerated; one more pauses the rollout for a person to promote or abort.",
    )
    consecutive_error_limit: int = Field(
        4,
        ge=0,
        le=100,
        description="Analyses in a row without metrics tolerated (each pauses); one more rolls back.",
    )


class Rollout(ApiModel):
    """Stage a fall of the steady operating temperature through canary pods, A/B-tested against stable.

    A fall larger than ``temperatureStep`` runs first on a share of the pods; each step's analysis
    passes before the share grows, and the last one promotes. Never staged: a rise, a fall within the
    step, a drop to hold the SLO in a burst, and the return to the promoted point after it.
    """

    temperature_step: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="Falls of the operating temperature larger than this are staged; smaller ones apply at once.",
    )
    steps: list[CanaryPercent] = Field(
        default_factory=lambda: [10, 25, 50],
        min_length=1,
        max_length=10,
        description="Canary share at each step, in percent of the pods (at least one pod, never all).",
    )
    analysis: RolloutAnalysis = Field(default_factory=RolloutAnalysis, description="How each step is judged.")


class RoutedModelSpec(ApiModel):
    """A model served by routed runtime pods, with its latency SLO, power budget and quality floor."""

    cel_rules = (
        CelRule(
            rule="has(self.model) != has(self.targetRef)",
            message="set exactly one of spec.model (Thermostat creates the pods) "
            "or spec.targetRef (drive an existing Deployment)",
            check=lambda s: (s.model is None) != (s.target_ref is None),
        ),
        CelRule(
            rule="!has(self.behavior) || !has(self.behavior.onMetricsUnavailable) "
            "|| !has(self.behavior.onMetricsUnavailable.replicas) "
            "|| self.behavior.onMetricsUnavailable.replicas <= self.replicas.max",
            message="behavior.onMetricsUnavailable.replicas must not exceed replicas.max",
            check=lambda s: (
                s.behavior.on_metrics_unavailable.replicas is None
                or s.behavior.on_metrics_unavailable.replicas <= s.replicas.max
            ),
        ),
    )

    model: ModelSource | None = Field(None, description="Runtime pods for Thermostat to create and own.")
    target_ref: TargetRef | None = Field(None, description="An existing Deployment to drive instead.")
    slo: LatencySlo = Field(description="The latency objective.")
    budget: Budget | None = Field(None, description="Power and energy limits; none when unset.")
    quality: Quality = Field(default_factory=Quality, description="Quality floor.")
    replicas: ReplicaBounds = Field(description="Replica bounds.")
    behavior: Behavior = Field(default_factory=Behavior, description="Control period and limits.")
    mode: Mode = Field(
        Mode.ENFORCE, strict=False, description="Enforce: apply decisions. Recommend: publish them in status only."
    )
    metrics: MetricsSpec = Field(default_factory=MetricsSpec, description="Metric sources.")
    rollout: Rollout | None = Field(
        None, description="Stage falls of the operating temperature through canary pods; unset: all pods at once."
    )
