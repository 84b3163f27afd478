"""PromQL templates: the SLO's metric, window and quantile, scoping labels, DCGM units, overrides."""

from __future__ import annotations

from typing import Any

import pytest

from thermostat.api import RoutedModelSpec
from thermostat.control.types import Signal
from thermostat.metrics import Scope
from thermostat.metrics.templates import freshness_query, render, template_for

pytestmark = pytest.mark.fast
SCOPE = Scope("prod", "chat")


def spec(**overrides: Any) -> RoutedModelSpec:
    raw: dict[str, Any] = {"model": {"image": "i"}, "slo": {"targetSeconds": 1.0}, "replicas": {"max": 2}}
    raw.update(overrides)
    return RoutedModelSpec.model_validate(raw)


def promql(signal: str, s: RoutedModelSpec) -> str:
    return render(template_for(signal, s.slo, s.metrics).promql, SCOPE, s.slo)


def test_latency_is_the_slo_quantile_of_the_slo_metric_over_its_window() -> None:
    s = spec(slo={"targetSeconds": 0.5, "metric": "TimeToFirstToken", "quantile": 0.99, "windowSeconds": 120})
    assert promql(Signal.LATENCY, s) == (
        "histogram_quantile(0.99, sum by (le) (rate(thermostat_time_to_first_token_seconds_bucket"
        '{namespace="prod",routedmodel="chat",track!="canary"}[120s])))'  # stable pods only
    )


def test_runtime_and_dcgm_power_and_energy() -> None:
    assert (
        promql(Signal.POWER, spec())
        == 'sum by (source) (thermostat_gpu_power_watts{namespace="prod",routedmodel="chat"})'
    )
    dcgm = spec(metrics={"powerSource": "DCGM"})
    # The join itself is tested against a real Prometheus (tests/integration/test_dcgm_vllm_series.py).
    assert 'up{namespace="prod",routedmodel="chat"}' in promql(Signal.POWER, dcgm)
    assert promql(Signal.ENERGY, dcgm).endswith(" / 1000")  # millijoules -> joules


def test_the_vllm_preset_reads_vllm_series_and_power_from_dcgm() -> None:
    s = spec(model=None, targetRef={"name": "vllm"}, metrics={"preset": "vLLM"})
    assert s.metrics.effective_power_source == "DCGM"
    assert "vllm:e2e_request_latency_seconds_bucket" in promql(Signal.LATENCY, s)
    assert "DCGM_FI_DEV_POWER_USAGE" in promql(Signal.POWER, s)
    with pytest.raises(ValueError, match=r"metrics\.powerSource to DCGM"):
        spec(model=None, targetRef={"name": "vllm"}, metrics={"preset": "vLLM", "powerSource": "Runtime"})


def test_requests_offered_served_and_shed_and_quality_is_a_ratio_of_rates() -> None:
    scope = 'namespace="prod",routedmodel="chat"'
    assert promql(Signal.REQUEST_RATE, spec()) == f"sum(rate(thermostat_requests_total{{{scope}}}[60s]))"  # every code
    assert promql(Signal.SERVED_RATE, spec()) == (
        f'sum(rate(thermostat_requests_total{{{scope},code="200"}}[60s])) or vector(0)'
    )
    assert 'code="429"' in promql(Signal.SHED_RATE, spec())
    assert promql(Signal.QUALITY, spec()).count("[60s]") == 2
    stable = f'{scope},track!="canary"'  # the law learns quality from stable pods only
    assert promql(Signal.QUALITY_KL, spec()) == (
        f"sum(rate(thermostat_shadow_kl_nats_total{{{stable}}}[60s]))"
        f" / sum(rate(thermostat_shadow_tokens_total{{{stable}}}[60s]))"
    )
    assert promql(Signal.SHADOW_TOKENS, spec()) == f"sum(rate(thermostat_shadow_tokens_total{{{stable}}}[60s]))"


def test_override_replaces_the_default_and_loses_the_freshness_anchor() -> None:
    s = spec(metrics={"queries": {"latency": "max(my_p95{{selector}})"}})
    template = template_for(Signal.LATENCY, s.slo, s.metrics)
    assert template.anchor is None
    assert render(template.promql, SCOPE, s.slo) == 'max(my_p95{namespace="prod",routedmodel="chat"})'


def test_label_values_are_escaped() -> None:
    assert 'routedmodel="a\\"b"' in freshness_query("x", Scope("ns", 'a"b'))


def test_every_default_template_is_documented_verbatim() -> None:
    from pathlib import Path

    from thermostat.metrics.templates import DCGM_TEMPLATES, RUNTIME_TEMPLATES

    docs = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    for signal, template in [*RUNTIME_TEMPLATES.items(), *DCGM_TEMPLATES.items()]:
        assert f"`{template.promql}`" in docs, f"docs/metrics.md lacks the {signal} template {template.promql}"
        assert f"`{template.anchor}`" in docs, signal


def test_the_vllm_preset_queries_are_in_the_drop_in_guide_verbatim() -> None:
    from pathlib import Path

    from thermostat.api.spec import LatencySlo, MetricsPreset, PowerSource
    from thermostat.control.types import Signal
    from thermostat.metrics.templates import DCGM_TEMPLATES, VLLM_LATENCY_HISTOGRAMS, VLLM_TEMPLATES, default_template

    docs = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text(encoding="utf-8")
    latency = [
        default_template(Signal.LATENCY, LatencySlo(metric=m, targetSeconds=1.0), PowerSource.DCGM, MetricsPreset.VLLM)
        for m in VLLM_LATENCY_HISTOGRAMS
    ]
    for template in [*VLLM_TEMPLATES.values(), *DCGM_TEMPLATES.values(), *latency]:
        assert f"`{template.promql}`" in docs, f"docs/operator.md lacks the vLLM preset's query {template.promql}"
        assert f"`{template.anchor}`" in docs, template.anchor
