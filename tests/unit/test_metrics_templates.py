"""PromQL templates: the SLO's metric, window and quantile, scoping labels, DCGM units, overrides."""

from __future__ import annotations

from typing import Any

import pytest

from thermostat.api import RoutedModelSpec
from thermostat.control.types import Signal
from thermostat.metrics import MetricsError, Reading, Scope, SourceUnavailableError, collect
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
        '{namespace="prod",routedmodel="chat"}[120s])))'
    )


def test_runtime_and_dcgm_power_and_energy() -> None:
    assert (
        promql(Signal.POWER, spec())
        == 'sum by (source) (thermostat_gpu_power_watts{namespace="prod",routedmodel="chat"})'
    )
    dcgm = spec(metrics={"powerSource": "DCGM"})
    assert promql(Signal.POWER, dcgm).startswith("sum(DCGM_FI_DEV_POWER_USAGE{")
    assert promql(Signal.ENERGY, dcgm).endswith("[60s])) / 1000")  # millijoules -> joules


def test_requests_count_completed_ones_and_quality_is_a_ratio_of_rates() -> None:
    assert 'code="200"' in promql(Signal.REQUEST_RATE, spec())
    assert promql(Signal.QUALITY, spec()).count("[60s]") == 2


def test_override_replaces_the_default_and_loses_the_freshness_anchor() -> None:
    s = spec(metrics={"queries": {"latency": "max(my_p95{{selector}})"}})
    template = template_for(Signal.LATENCY, s.slo, s.metrics)
    assert template.anchor is None
    assert render(template.promql, SCOPE, s.slo) == 'max(my_p95{namespace="prod",routedmodel="chat"})'


def test_label_values_are_escaped() -> None:
    assert 'routedmodel="a\\"b"' in freshness_query("x", Scope("ns", 'a"b'))


class ScriptedSource:
    """A MetricsSource answering from a table: a value, or an error to raise."""

    def __init__(self, answers: dict[str, float | MetricsError]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def read(self, signal: str, scope: Scope, *, now: float) -> Reading:
        self.calls.append(signal)
        answer = self.answers.get(signal, MetricsError("not scripted"))
        if isinstance(answer, MetricsError):
            raise answer
        return Reading(answer, age_s=1.0, power_source="nvml" if signal == Signal.POWER else None)


def test_collect_reports_missing_signals_with_their_reason() -> None:
    source = ScriptedSource({Signal.LATENCY: 0.4, Signal.POWER: 300.0})
    signals = collect(source, SCOPE, now=0.0)
    assert signals.values[Signal.LATENCY] == 0.4
    assert signals.power_source == "nvml"
    assert signals.missing[Signal.QUALITY].startswith("MetricsError")
    assert not signals.unreachable


def test_collect_stops_asking_an_unreachable_backend() -> None:
    source = ScriptedSource({Signal.LATENCY: SourceUnavailableError("connection refused")})
    signals = collect(source, SCOPE, now=0.0)
    assert signals.unreachable
    assert source.calls == [Signal.LATENCY]
    assert len(signals.missing) == 7
