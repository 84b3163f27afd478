"""The Prometheus metrics source against a real Prometheus scraping series the test drives.

Checks the default PromQL templates over the runtime contract's series, and that every way of not
knowing (no series, NaN, stale, server down, bad query) is a typed error rather than a zero.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from thermostat.api import RoutedModelSpec
from thermostat.control.types import Signal
from thermostat.metrics import (
    Idle,
    Missing,
    NoDataError,
    NotANumberError,
    QueryRejectedError,
    Reading,
    Scope,
    SourceUnavailableError,
    StaleDataError,
    collect,
)
from thermostat.metrics.prometheus import PrometheusMetrics
from thermostat_stack.promserver import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

SCOPE = Scope(namespace="it", routedmodel="chat")


def make_spec(**overrides: Any) -> RoutedModelSpec:
    raw: dict[str, Any] = {
        "model": {"image": "img"},
        "slo": {"targetSeconds": 0.6, "quantile": 0.9, "windowSeconds": 15},
        "replicas": {"max": 3},
    }
    raw.update(overrides)
    return RoutedModelSpec.model_validate(raw)


def source_for(prometheus: PrometheusServer, spec: RoutedModelSpec, max_age_s: float = 10.0) -> PrometheusMetrics:
    return PrometheusMetrics(prometheus.url, slo=spec.slo, metrics=spec.metrics, max_age_s=max_age_s, timeout_s=2.0)


def wait_for(read: Any, *, timeout_s: float = 20.0) -> Any:
    """Poll a read until it succeeds (Prometheus needs two scrapes for a rate)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return read()
        except (NoDataError, NotANumberError, StaleDataError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_default_templates_read_the_runtime_series(runtime_exporter: Any, prometheus: PrometheusServer) -> None:
    runtime_exporter.power.labels(gpu="0", source="nvml").set(350.0)
    runtime_exporter.power.labels(gpu="1", source="nvml").set(250.0)
    runtime_exporter.queue_depth.set(3)
    source = source_for(prometheus, make_spec())
    power = wait_for(lambda: source.read(Signal.POWER, SCOPE, now=time.time()))
    assert power.value == pytest.approx(600.0)
    assert power.power_source == "nvml"
    assert power.age_s is not None
    assert power.age_s < 10
    # Every request takes 0.3 s: the p90 lies in the (0.25, 0.5] bucket; quality 90 of 100 shadow tokens agree.
    deadline = time.monotonic() + 30
    signals = collect(source, SCOPE, now=time.time())
    while not all(isinstance(v, Reading) for v in signals.values.values()) and time.monotonic() < deadline:
        for seconds in [0.3] * 20 + [0.55, 0.65]:  # 21 of 22 within the 0.6 s target, two in one contract bucket
            runtime_exporter.request_duration.observe(seconds)
            runtime_exporter.requests.labels(code="200").inc()
            runtime_exporter.tokens.labels(kind="generated").inc(50)
        runtime_exporter.requests.labels(code="429").inc(5)
        runtime_exporter.shadow.inc(100)
        runtime_exporter.shadow_agree.inc(90)
        runtime_exporter.shadow_kl.inc(0.5)
        runtime_exporter.energy.labels(gpu="0", source="nvml").inc(600)
        time.sleep(0.5)
        signals = collect(source, SCOPE, now=time.time())
    value = {name: v.value for name, v in signals.values.items() if isinstance(v, Reading)}
    assert set(value) == set(signals.values), signals.values
    assert 0.25 < value[Signal.LATENCY] <= 0.5
    offered = value[Signal.SERVED_RATE] + value[Signal.SHED_RATE]
    # Each query is its own instant (a scrape can land between two): equal within a few percent.
    assert value[Signal.REQUEST_RATE] == pytest.approx(offered, rel=0.05)  # every code
    assert value[Signal.SHED_RATE] == pytest.approx(value[Signal.SERVED_RATE] * 5 / 22, rel=0.05)
    assert value[Signal.TOKEN_RATE] == pytest.approx(50 * value[Signal.SERVED_RATE], rel=0.05)
    assert value[Signal.WITHIN_SLO] == pytest.approx(21 / 22, abs=1e-6)  # the SLO bucket: exact
    assert value[Signal.QUALITY] == pytest.approx(0.9, abs=0.001)
    assert value[Signal.QUALITY_KL] == pytest.approx(0.005, rel=0.01)
    assert value[Signal.SHADOW_TOKENS] > 0
    assert value[Signal.ENERGY] > 0
    assert value[Signal.QUEUE_DEPTH] == 3


def test_power_marked_estimate_when_any_gpu_is_modelled(runtime_exporter: Any, prometheus: PrometheusServer) -> None:
    runtime_exporter.power.labels(gpu="0", source="estimate").set(90.0)
    reading = wait_for(lambda: source_for(prometheus, make_spec()).read(Signal.POWER, SCOPE, now=time.time()))
    assert (reading.value, reading.power_source) == (pytest.approx(90.0), "estimate")


def test_unknown_is_never_zero(runtime_exporter: Any, prometheus: PrometheusServer) -> None:
    runtime_exporter.power.labels(gpu="0", source="nvml").set(100.0)
    runtime_exporter.shadow.inc(0)
    source = source_for(prometheus, make_spec())
    wait_for(lambda: source.read(Signal.POWER, SCOPE, now=time.time()))
    # Another RoutedModel's scope has no series at all.
    with pytest.raises((NoDataError, StaleDataError)):
        source.read(Signal.POWER, Scope("it", "other"), now=time.time())
    # No shadow tokens in the window: 0/0 is NaN, reported as such.
    with pytest.raises(NotANumberError):
        wait_for(lambda: source.read(Signal.QUALITY, SCOPE, now=time.time()), timeout_s=5)
    # No requests in the window: the quantile of an empty histogram is NaN too.
    with pytest.raises(NotANumberError):
        source.read(Signal.LATENCY, SCOPE, now=time.time())
    # ... which the metrics layer knows for a fresh zero load: Idle, not Missing.
    signals = collect(source, SCOPE, now=time.time())
    assert signals.get(Signal.SERVED_RATE) == Reading(0.0, signals.get(Signal.SERVED_RATE).time)  # type: ignore[union-attr]
    assert isinstance(signals.get(Signal.LATENCY), Idle)
    assert isinstance(signals.get(Signal.QUALITY), Idle)


def test_a_scrape_target_that_vanished_is_stale(runtime_exporter: Any, prometheus: PrometheusServer) -> None:
    runtime_exporter.power.labels(gpu="0", source="nvml").set(100.0)
    source = source_for(prometheus, make_spec(), max_age_s=2.0)
    wait_for(lambda: source.read(Signal.POWER, SCOPE, now=time.time()))
    runtime_exporter.close()
    deadline = time.monotonic() + 20
    error: Exception | None = None
    while error is None and time.monotonic() < deadline:
        try:
            source.read(Signal.POWER, SCOPE, now=time.time())
        except StaleDataError as stale:
            error = stale
        except NoDataError:
            pass  # the staleness marker landed between the freshness check and the query: ask again
        time.sleep(0.5)
    assert isinstance(error, StaleDataError)


def test_bad_override_and_stopped_server_are_typed_errors(prometheus: PrometheusServer) -> None:
    spec = make_spec(metrics={"queries": {"power": "sum(rate(x[5m]"}})
    with pytest.raises(QueryRejectedError, match="refused"):
        source_for(prometheus, spec).read(Signal.POWER, SCOPE, now=time.time())
    source = source_for(prometheus, make_spec())
    prometheus.stop()
    signals = collect(source, SCOPE, now=time.time())
    assert signals.unreachable
    assert not [v for v in signals.values.values() if not isinstance(v, Missing)]
    assert all(isinstance(v, Missing) and v.reason.startswith("SourceUnavailable:") for v in signals.values.values())
    with pytest.raises(SourceUnavailableError):
        source.read(Signal.LATENCY, SCOPE, now=time.time())
