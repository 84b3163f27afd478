"""Default PromQL templates: per server preset (thermostat-runtime, stock vLLM) and the DCGM exporter's.

A template is PromQL with three placeholders filled in literally: ``{selector}`` (the scoping label
matchers, e.g. ``namespace="prod",routedmodel="chat"``), ``{window}`` (the SLO window, e.g. ``60s``)
and ``{quantile}``. ``spec.metrics.queries`` overrides any of them. Each default also names its
*anchor*, the raw series whose newest sample tells how fresh the signal is. docs/metrics.md lists
them all; docs/operator.md lists the vLLM preset's.

dcgm-exporter's series carry the GPU's pod as ``pod``/``namespace`` (scraped with honorLabels) or
``exported_pod``/``exported_namespace`` (without: the target's own labels win), never
``routedmodel``. The DCGM templates move the exported pair over the target's where present and keep
the GPUs whose pod is one of the RoutedModel's scrape targets (``up{selector}``): both shapes work.
"""

from __future__ import annotations

from dataclasses import dataclass

from thermostat.api.spec import LatencySlo, MetricsPreset, MetricsSpec, PowerSource, QueryOverrides, SloMetric
from thermostat.control.types import Signal
from thermostat.metrics.source import Scope

LATENCY_HISTOGRAMS = {
    SloMetric.REQUEST_LATENCY: "thermostat_request_duration_seconds",
    SloMetric.TIME_TO_FIRST_TOKEN: "thermostat_time_to_first_token_seconds",
    SloMetric.TIME_PER_OUTPUT_TOKEN: "thermostat_time_per_output_token_seconds",
}
QUEUE_DEPTH = Signal.QUEUE_DEPTH  # kept for callers of the old name


# vLLM's own names (vllm/v1/metrics/loggers.py; tests/fixtures/exposition/vllm.prom cites the version).
VLLM_LATENCY_HISTOGRAMS = {
    SloMetric.REQUEST_LATENCY: "vllm:e2e_request_latency_seconds",
    SloMetric.TIME_TO_FIRST_TOKEN: "vllm:time_to_first_token_seconds",
    SloMetric.TIME_PER_OUTPUT_TOKEN: "vllm:time_per_output_token_seconds",
}


@dataclass(frozen=True)
class Template:
    """A PromQL template and the raw series that says how fresh it is (None: cannot tell).

    ``anchor_promql``, when set, is the instant vector of the anchor's sample timestamps (a template
    too): for series that need a join to be scoped; otherwise ``timestamp(<anchor>{<selector>})``.
    """

    promql: str
    anchor: str | None
    anchor_promql: str | None = None


# The law learns from stable pods only (DESIGN §3 "Tracks"): latency and quality skip the canary's
# series (a series without the label, e.g. stock vLLM's, matches). Load, power and energy stay totals:
# the replicas and the budget are the whole's.
STABLE_ONLY = ',track!="canary"'


def latency_template(
    metric: SloMetric, histograms: dict[SloMetric, str] = LATENCY_HISTOGRAMS, *, matchers: str = STABLE_ONLY
) -> Template:
    """The SLO's quantile of its latency histogram over the SLO window, across the stable pods."""
    histogram = histograms[SloMetric(metric)]
    return Template(
        f"histogram_quantile({{quantile}}, sum by (le) "
        f"(rate({histogram}_bucket{{{{selector}}{matchers}}}[{{window}}])))",
        f"{histogram}_count",
    )


def within_slo_template(metric: SloMetric) -> Template:
    """The share of requests within the SLO target: the SLO bucket's rate over the count's.

    The bucket exists only on pods started with the target in their routing ConfigMap (DESIGN §3); the
    count is taken over those pods alone, so a pod started before an SLO edit does not dilute it.
    """
    histogram = LATENCY_HISTOGRAMS[SloMetric(metric)]
    bucket = f'rate({histogram}_bucket{{{{selector}},le=~"{{slo_le}}"}}[{{window}}])'
    count = f"rate({histogram}_count{{{{selector}}}}[{{window}}])"
    return Template(f"sum({bucket}) / sum({count} and on (namespace, pod) {bucket})", f"{histogram}_count")


def _counter_rate(series: str, matchers: str = "") -> str:
    """The summed per-second rate of a runtime counter over the window."""
    return f"sum(rate({series}{{{{selector}}{matchers}}}[{{window}}]))"


# A child the runtime has not exported (a code never answered) is a rate of 0, not "no data": the
# anchor, the counter's own newest sample, still says whether the pods are there at all.
_ZERO_WHEN_ABSENT = " or vector(0)"
RUNTIME_TEMPLATES: dict[str, Template] = {
    Signal.REQUEST_RATE: Template(_counter_rate("thermostat_requests_total"), "thermostat_requests_total"),
    Signal.SERVED_RATE: Template(
        _counter_rate("thermostat_requests_total", ',code="200"') + _ZERO_WHEN_ABSENT, "thermostat_requests_total"
    ),
    Signal.SHED_RATE: Template(
        _counter_rate("thermostat_requests_total", ',code="429"') + _ZERO_WHEN_ABSENT, "thermostat_requests_total"
    ),
    Signal.TOKEN_RATE: Template(
        _counter_rate("thermostat_tokens_total", ',kind="generated"'), "thermostat_tokens_total"
    ),
    Signal.POWER: Template("sum by (source) (thermostat_gpu_power_watts{{selector}})", "thermostat_gpu_power_watts"),
    Signal.ENERGY: Template(_counter_rate("thermostat_gpu_energy_joules_total"), "thermostat_gpu_energy_joules_total"),
    Signal.QUALITY: Template(
        _counter_rate("thermostat_shadow_agree_tokens_total", STABLE_ONLY)
        + " / "
        + _counter_rate("thermostat_shadow_tokens_total", STABLE_ONLY),
        "thermostat_shadow_tokens_total",
    ),
    Signal.QUALITY_KL: Template(
        _counter_rate("thermostat_shadow_kl_nats_total", STABLE_ONLY)
        + " / "
        + _counter_rate("thermostat_shadow_tokens_total", STABLE_ONLY),
        "thermostat_shadow_kl_nats_total",
    ),
    Signal.SHADOW_TOKENS: Template(
        _counter_rate("thermostat_shadow_tokens_total", STABLE_ONLY), "thermostat_shadow_tokens_total"
    ),
    Signal.QUEUE_DEPTH: Template("sum(thermostat_queue_depth{{selector}})", "thermostat_queue_depth"),
}
# vLLM counts a request when it finishes (success counter, labelled finished_reason): there is no
# arrival counter, so offered = finished; it queues rather than refusing, so nothing is shed (429s come
# from a gateway in front of it, outside these pods). The latency quantile includes the queue wait.
_VLLM_FINISHED = _counter_rate("vllm:request_success_total")
VLLM_TEMPLATES: dict[str, Template] = {
    Signal.REQUEST_RATE: Template(_VLLM_FINISHED, "vllm:request_success_total"),
    Signal.SERVED_RATE: Template(_VLLM_FINISHED + _ZERO_WHEN_ABSENT, "vllm:request_success_total"),
    Signal.SHED_RATE: Template("vector(0)", "vllm:request_success_total"),
    Signal.TOKEN_RATE: Template(_counter_rate("vllm:generation_tokens_total"), "vllm:generation_tokens_total"),
    Signal.QUEUE_DEPTH: Template("sum(vllm:num_requests_waiting{{selector}})", "vllm:num_requests_waiting"),
}


def on_routedmodel_pods(vector: str) -> str:
    """A dcgm-exporter vector scoped to the RoutedModel's pods, in either label shape (module docstring)."""
    relabelled = (
        f'label_replace(label_replace({vector}, "pod", "$1", "exported_pod", "(.+)"), '
        '"namespace", "$1", "exported_namespace", "(.+)")'
    )
    return f"({relabelled} and on (namespace, pod) up{{{{selector}}}})"


# Per GPU, in watts; the energy counter is in millijoules.
DCGM_TEMPLATES: dict[str, Template] = {
    Signal.POWER: Template(
        f"sum{on_routedmodel_pods('DCGM_FI_DEV_POWER_USAGE')}",
        "DCGM_FI_DEV_POWER_USAGE",
        on_routedmodel_pods("timestamp(DCGM_FI_DEV_POWER_USAGE)"),
    ),
    Signal.ENERGY: Template(
        f"sum{on_routedmodel_pods('rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[{window}])')} / 1000",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        on_routedmodel_pods("timestamp(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION)"),
    ),
}
# What each preset's pods export; a signal outside it is not asked for (Missing "not observed").
_SHADOW = (Signal.SHADOW_TOKENS, Signal.QUALITY, Signal.QUALITY_KL)
OVERRIDE_FIELDS: dict[str, str] = {
    Signal.LATENCY: "latency",
    Signal.REQUEST_RATE: "request_rate",
    Signal.TOKEN_RATE: "token_rate",
    Signal.POWER: "power",
    Signal.ENERGY: "energy_rate",
    Signal.QUALITY: "quality",
}


def observed_signals(metrics: MetricsSpec, everything: tuple[str, ...]) -> tuple[str, ...]:
    """The signals of ``everything`` the preset's pods export (vLLM: no shadow quality, exact serving)."""
    if metrics.preset == MetricsPreset.VLLM:
        return tuple(s for s in everything if s not in _SHADOW)
    return everything


def default_template(
    signal: str, slo: LatencySlo, power_source: PowerSource, preset: MetricsPreset = MetricsPreset.THERMOSTAT
) -> Template:
    """The built-in template for a signal, given the SLO's metric, the power source and the preset."""
    vllm = preset == MetricsPreset.VLLM
    if signal == Signal.LATENCY:
        if vllm:  # no routing knob, so no canary track: the guide's query stays vLLM's plain one
            return latency_template(slo.metric, VLLM_LATENCY_HISTOGRAMS, matchers="")
        return latency_template(slo.metric)
    if signal == Signal.WITHIN_SLO:
        return within_slo_template(slo.metric)
    if power_source == PowerSource.DCGM and signal in DCGM_TEMPLATES:
        return DCGM_TEMPLATES[signal]
    if vllm:
        if signal not in VLLM_TEMPLATES:
            raise KeyError(f"the vLLM preset has no query for {signal}")
        return VLLM_TEMPLATES[signal]
    return RUNTIME_TEMPLATES[signal]


def template_for(signal: str, slo: LatencySlo, metrics: MetricsSpec) -> Template:
    """The template in force: the spec's override (freshness then unknown) or the default."""
    override_field = OVERRIDE_FIELDS.get(signal)
    overrides: QueryOverrides = metrics.queries
    override = getattr(overrides, override_field) if override_field else None
    if override:
        return Template(override, None)
    return default_template(signal, slo, metrics.effective_power_source, MetricsPreset(metrics.preset))


def label_value(value: str) -> str:
    """A PromQL string literal's body: backslashes and double quotes escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def selector(scope: Scope) -> str:
    """The scoping matchers of a RoutedModel's series."""
    return f'namespace="{label_value(scope.namespace)}",routedmodel="{label_value(scope.routedmodel)}"'


def le_pattern(seconds: float) -> str:
    """A PromQL regex (string-literal body) matching the ``le`` label of a bucket bound: ``5`` or ``5.0``.

    Exporters print bounds differently (prometheus-client ``5.0``, Go ``5``), so both spellings match.
    """
    spellings = {repr(float(seconds)), f"{seconds:g}"}
    return "|".join(sorted(s.replace(".", "\\\\.") for s in spellings))


def render(template: str, scope: Scope, slo: LatencySlo) -> str:
    """Fill in ``{selector}``, ``{window}``, ``{quantile}`` and ``{slo_le}`` (literal replacement, no
    other braces touched)."""
    return (
        template.replace("{selector}", selector(scope))
        .replace("{window}", f"{slo.window_seconds}s")
        .replace("{quantile}", repr(slo.quantile))
        .replace("{slo_le}", le_pattern(slo.target_seconds))
    )


def freshness_query(anchor: str, scope: Scope, anchor_promql: str | None = None) -> str:
    """Seconds since the newest sample of the anchor series was scraped."""
    if anchor_promql is not None:
        return f"time() - max({anchor_promql.replace('{selector}', selector(scope))})"
    return f"time() - max(timestamp({anchor}{{{selector(scope)}}}))"
