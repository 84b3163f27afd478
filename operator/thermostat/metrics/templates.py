"""Default PromQL templates over the runtime's series (DESIGN §3) and the DCGM exporter's.

A template is PromQL with three placeholders filled in literally: ``{selector}`` (the scoping label
matchers, e.g. ``namespace="prod",routedmodel="chat"``), ``{window}`` (the SLO window, e.g. ``60s``)
and ``{quantile}``. ``spec.metrics.queries`` overrides any of them. Each default also names its
*anchor*, the raw series whose newest sample tells how fresh the signal is. docs/metrics.md lists
them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from thermostat.api.spec import LatencySlo, MetricsSpec, PowerSource, QueryOverrides, SloMetric
from thermostat.control.types import Signal
from thermostat.metrics.source import Scope

LATENCY_HISTOGRAMS = {
    SloMetric.REQUEST_LATENCY: "thermostat_request_duration_seconds",
    SloMetric.TIME_TO_FIRST_TOKEN: "thermostat_time_to_first_token_seconds",
    SloMetric.TIME_PER_OUTPUT_TOKEN: "thermostat_time_per_output_token_seconds",
}
QUEUE_DEPTH = Signal.QUEUE_DEPTH  # kept for callers of the old name


@dataclass(frozen=True)
class Template:
    """A PromQL template and the raw series that says how fresh it is (None: cannot tell)."""

    promql: str
    anchor: str | None


def latency_template(metric: SloMetric) -> Template:
    """The SLO's quantile of its latency histogram over the SLO window, across all pods."""
    histogram = LATENCY_HISTOGRAMS[SloMetric(metric)]
    return Template(
        f"histogram_quantile({{quantile}}, sum by (le) (rate({histogram}_bucket{{{{selector}}}}[{{window}}])))",
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
        _counter_rate("thermostat_shadow_agree_tokens_total") + " / " + _counter_rate("thermostat_shadow_tokens_total"),
        "thermostat_shadow_tokens_total",
    ),
    Signal.QUALITY_KL: Template(
        _counter_rate("thermostat_shadow_kl_nats_total") + " / " + _counter_rate("thermostat_shadow_tokens_total"),
        "thermostat_shadow_kl_nats_total",
    ),
    Signal.SHADOW_TOKENS: Template(_counter_rate("thermostat_shadow_tokens_total"), "thermostat_shadow_tokens_total"),
    Signal.QUEUE_DEPTH: Template("sum(thermostat_queue_depth{{selector}})", "thermostat_queue_depth"),
}
# The DCGM exporter reports per GPU with the pod's namespace/pod labels; its energy counter is in millijoules.
DCGM_TEMPLATES: dict[str, Template] = {
    Signal.POWER: Template("sum(DCGM_FI_DEV_POWER_USAGE{{selector}})", "DCGM_FI_DEV_POWER_USAGE"),
    Signal.ENERGY: Template(
        "sum(rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{selector}}[{window}])) / 1000",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    ),
}
OVERRIDE_FIELDS: dict[str, str] = {
    Signal.LATENCY: "latency",
    Signal.REQUEST_RATE: "request_rate",
    Signal.TOKEN_RATE: "token_rate",
    Signal.POWER: "power",
    Signal.ENERGY: "energy_rate",
    Signal.QUALITY: "quality",
}


def default_template(signal: str, slo: LatencySlo, power_source: PowerSource) -> Template:
    """The built-in template for a signal, given the SLO's metric and the power source."""
    if signal == Signal.LATENCY:
        return latency_template(slo.metric)
    if signal == Signal.WITHIN_SLO:
        return within_slo_template(slo.metric)
    if power_source == PowerSource.DCGM and signal in DCGM_TEMPLATES:
        return DCGM_TEMPLATES[signal]
    return RUNTIME_TEMPLATES[signal]


def template_for(signal: str, slo: LatencySlo, metrics: MetricsSpec) -> Template:
    """The template in force: the spec's override (freshness then unknown) or the default."""
    override_field = OVERRIDE_FIELDS.get(signal)
    overrides: QueryOverrides = metrics.queries
    override = getattr(overrides, override_field) if override_field else None
    if override:
        return Template(override, None)
    return default_template(signal, slo, PowerSource(metrics.power_source))


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


def freshness_query(anchor: str, scope: Scope) -> str:
    """Seconds since the newest sample of the anchor series was scraped."""
    return f"time() - max(timestamp({anchor}{{{selector(scope)}}}))"
