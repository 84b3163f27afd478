"""The direct scrape: the pods' own /metrics read as Prometheus' templates would, behind Reading | Idle | Missing."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from thermostat.api.spec import LatencySlo, MetricsSpec
from thermostat.control.signals import Missing, Reading
from thermostat.control.types import Signal
from thermostat.metrics import (
    NoDataError,
    Scope,
    Signals,
    SourceUnavailableError,
    StaleDataError,
    collect,
    prometheus_failed,
)
from thermostat.metrics.direct import DirectMetrics, PodTarget, histogram_quantile, pod_targets
from thermostat.metrics.source import CredentialsRejectedError, TlsVerificationError

pytestmark = pytest.mark.fast
SCOPE = Scope("prod", "chat")
SLO = LatencySlo.model_validate({"targetSeconds": 1.0, "quantile": 0.9, "windowSeconds": 60})


class Pod:
    """One pod's exposition, made by prometheus-client itself (the runtime's series names)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("thermostat_requests", "r", ["code"], registry=r)
        self.latency = Histogram("thermostat_request_duration_seconds", "l", buckets=(0.5, 1.0, 2.0), registry=r)
        self.power = Gauge("thermostat_gpu_power_watts", "p", ["gpu", "source"], registry=r)
        self.energy = Counter("thermostat_gpu_energy_joules", "e", ["gpu", "source"], registry=r)
        self.queue = Gauge("thermostat_queue_depth", "q", registry=r)

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def source_over(pods: dict[str, Pod]) -> DirectMetrics:
    def fetch(url: str, _timeout_s: float) -> str:
        return pods[url.removeprefix("http://").removesuffix("/metrics")].text()

    return DirectMetrics(slo=SLO, metrics=MetricsSpec(), fetch=fetch)


def targets(pods: dict[str, Pod]) -> list[PodTarget]:
    return [PodTarget(name, f"http://{name}/metrics") for name in pods]


def test_rates_are_counter_deltas_summed_over_pods_and_gauges_are_the_newest_sum() -> None:
    pods = {"a": Pod(), "b": Pod()}
    source = source_over(pods)
    source.scrape(targets(pods), now=100.0)
    pods["a"].requests.labels(code="200").inc(30)
    pods["b"].requests.labels(code="200").inc(10)
    pods["b"].requests.labels(code="429").inc(20)
    pods["a"].power.labels(gpu="0", source="nvml").set(200.0)
    pods["b"].power.labels(gpu="0", source="nvml").set(100.0)
    pods["a"].energy.labels(gpu="0", source="nvml").inc(2000.0)
    source.scrape(targets(pods), now=110.0)
    read = {s: source.read(s, SCOPE, now=111.0) for s in (Signal.REQUEST_RATE, Signal.SERVED_RATE, Signal.SHED_RATE)}
    assert {s: v.value for s, v in read.items()} == {
        Signal.REQUEST_RATE: 6.0, Signal.SERVED_RATE: 4.0, Signal.SHED_RATE: 2.0
    }  # fmt: skip
    assert read[Signal.REQUEST_RATE].age_s == 1.0
    power = source.read(Signal.POWER, SCOPE, now=111.0)
    assert (power.value, power.power_source) == (300.0, "nvml")
    assert source.read(Signal.ENERGY, SCOPE, now=111.0).value == 200.0


def test_one_scrape_has_no_rate_and_is_missing_never_zero() -> None:
    pods = {"a": Pod()}
    source = source_over(pods)
    source.scrape(targets(pods), now=100.0)
    signals = collect(source, SCOPE, now=100.0, signals=(Signal.REQUEST_RATE, Signal.LATENCY, Signal.QUEUE_DEPTH))
    assert isinstance(signals.get(Signal.REQUEST_RATE), Missing)
    assert "two scrapes" in signals.get(Signal.REQUEST_RATE).reason  # type: ignore[union-attr]
    assert isinstance(signals.get(Signal.LATENCY), Missing)
    assert signals.get(Signal.QUEUE_DEPTH) == Reading(0.0, time=100.0)  # a gauge needs one scrape


def test_a_restarted_pod_counts_from_zero_as_prometheus_rate_does() -> None:
    pods = {"a": Pod()}
    source = source_over(pods)
    pods["a"].requests.labels(code="200").inc(100)
    source.scrape(targets(pods), now=0.0)
    pods["a"] = Pod()  # restarted: its counter starts again
    pods["a"].requests.labels(code="200").inc(5)
    source.scrape(targets(pods), now=5.0)
    assert source.read(Signal.REQUEST_RATE, SCOPE, now=5.0).value == 1.0


def test_latency_is_the_quantile_of_the_bucket_deltas() -> None:
    pods = {"a": Pod()}
    source = source_over(pods)
    for _ in range(50):
        pods["a"].latency.observe(0.1)  # before the window's first scrape: not counted
    source.scrape(targets(pods), now=0.0)
    for value in [0.2] * 5 + [1.5] * 5:
        pods["a"].latency.observe(value)
    source.scrape(targets(pods), now=10.0)
    # p90 of 10: rank 9 in (1, 2], 5 of 5 there -> 1 + (9 - 5) / 5 = 1.8 (Prometheus' interpolation)
    assert source.read(Signal.LATENCY, SCOPE, now=10.0).value == pytest.approx(1.8)


def test_histogram_quantile_follows_prometheus() -> None:
    assert histogram_quantile(0.5, {0.5: 2.0, 1.0: 4.0, math.inf: 4.0}) == pytest.approx(0.5)
    assert histogram_quantile(0.9, {0.5: 0.0, 1.0: 1.0, math.inf: 10.0}) == 1.0  # in +Inf: highest finite bound
    assert math.isnan(histogram_quantile(0.9, {1.0: 0.0, math.inf: 0.0}))


def test_no_pod_answering_is_source_unavailable() -> None:
    def refuse(url: str, timeout_s: float) -> str:
        raise OSError("connection refused")

    source = DirectMetrics(slo=SLO, metrics=MetricsSpec(), fetch=refuse)
    with pytest.raises(SourceUnavailableError, match="no pod answered: a"):
        source.scrape([PodTarget("a", "http://a/metrics")], now=0.0)


def test_an_overridden_query_is_not_guessed() -> None:
    metrics = MetricsSpec.model_validate({"queries": {"requestRate": "sum(rate(x[1m]))"}})
    source = DirectMetrics(slo=SLO, metrics=metrics, fetch=lambda url, _t: "")
    with pytest.raises(NoDataError, match="overrides requestRate"):
        source.read(Signal.REQUEST_RATE, SCOPE, now=0.0)


def test_pod_targets_are_running_pods_at_their_ip_and_metrics_port() -> None:
    ports = [{"name": "grpc", "containerPort": 9}, {"name": "http", "containerPort": 8000}]

    def pod(name: str, phase: str = "Running", **annotations: str) -> dict[str, object]:
        return {
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"containers": [{"ports": ports}]},
            "status": {"phase": phase, "podIP": "10.0.0.1"},
        }  # fmt: skip

    found = pod_targets([pod("a"), pod("b", **{"prometheus.io/port": "9100"}), pod("c", phase="Pending")])
    assert found == [PodTarget("a", "http://10.0.0.1:8000/metrics"), PodTarget("b", "http://10.0.0.1:9100/metrics")]


@pytest.mark.parametrize(
    ("error", "failed"),
    [
        (SourceUnavailableError("down"), True),
        (StaleDataError("old"), True),
        (NoDataError("none"), False),
        # A wrong password or CA is the user's to fix, said naming the Secret: no direct scrape hides it.
        (CredentialsRejectedError("401"), False),
        (TlsVerificationError("unknown CA"), False),
    ],
)
def test_prometheus_failed_on_unreachable_or_stale_needed_signals(error: Exception, failed: bool) -> None:
    signals = Signals(values={Signal.LATENCY: Missing("x")}, errors={Signal.LATENCY: error})  # type: ignore[dict-item]
    assert prometheus_failed(signals) is failed
