"""The direct scrape agrees with Prometheus: both read the same pod at the same moments, and the law
decides the same from either.

A real Prometheus scrapes the exporter as pod ``chat-0`` (conftest); ``DirectMetrics`` scrapes the
same exporter's /metrics each period. Tolerances, stated here and in docs/metrics.md: rates within
15 % (Prometheus extrapolates ``rate`` to the window's edges, the direct delta does not), the
latency quantile within one histogram bucket's interpolation (15 %), power exact (a gauge), and
the decisions equal in replicas and within 0.05 in routing temperature.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from integration_support import LoadDriver, SeriesExporter

from thermostat.api import RoutedModelSpec
from thermostat.control import Observation, decide
from thermostat.control.online import profile_for
from thermostat.control.signals import Reading
from thermostat.control.types import Signal
from thermostat.metrics import Scope, Signals, collect
from thermostat.metrics.direct import DirectMetrics, PodTarget
from thermostat.metrics.prometheus import PrometheusMetrics
from thermostat.profiles import load_profile
from thermostat.reconcile import Workload, build_observation
from thermostat_stack.promserver import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

SCOPE = Scope(namespace="it", routedmodel="chat")
SPEC = RoutedModelSpec.model_validate(
    {"model": {"image": "img"}, "slo": {"targetSeconds": 0.6, "quantile": 0.9, "windowSeconds": 15},
     "replicas": {"max": 6}, "behavior": {"periodSeconds": 1}}
)  # fmt: skip
SIGNALS = (Signal.REQUEST_RATE, Signal.SERVED_RATE, Signal.TOKEN_RATE, Signal.POWER, Signal.ENERGY, Signal.LATENCY)
WORKLOAD = Workload(name="chat", replicas=2, ready_replicas=2, selector={}, service_account="default")


def observe(signals: Signals, now: float) -> Observation:
    return build_observation(now, 1.0, WORKLOAD, signals, SPEC.slo.window_seconds)


def values(signals: Signals) -> dict[str, float]:
    return {name: v.value for name in SIGNALS if isinstance(v := signals.get(name), Reading)}


def test_direct_readings_and_decisions_agree_with_prometheus_on_the_same_pod(
    prometheus: PrometheusServer, runtime_exporter: SeriesExporter
) -> None:
    driver = LoadDriver(runtime_exporter)
    driver.set(rate=6.0, latency_s=0.3)
    driver.start()
    prom = PrometheusMetrics(prometheus.url, slo=SPEC.slo, metrics=SPEC.metrics, max_age_s=10.0, timeout_s=2.0)
    direct = DirectMetrics(slo=SPEC.slo, metrics=SPEC.metrics)
    target = [PodTarget("chat-0", f"http://{runtime_exporter.address}/metrics")]
    profile = profile_for(SPEC, load_profile())
    compared: list[tuple[dict[str, float], dict[str, float], Any, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while len(compared) < 3 and time.monotonic() < deadline:
            # Alternate fast and slow seconds: the p90 then falls between buckets (0.3 s and 1.5 s: p90 > SLO).
            driver.set(rate=6.0, latency_s=1.5 if driver.latency_s < 1.0 else 0.3)
            now = time.time()
            direct.scrape(target, now=now)
            by_prom, by_direct = collect(prom, SCOPE, now=now), collect(direct, SCOPE, now=now)
            a, b = values(by_prom), values(by_direct)
            # Compare once both windows are full of load (the SLO window since the first scrape).
            if len(a) == len(b) == len(SIGNALS) and direct.history[-1].time - direct.history[0].time >= 15:
                decided = [decide(observe(s, now), SPEC, None, now, profile=profile) for s in (by_prom, by_direct)]
                compared.append((a, b, *decided))
            time.sleep(1.0)
    finally:
        driver.stop()
    assert len(compared) == 3, "the two sources never both had every signal"
    for a, b, from_prom, from_direct in compared:
        print(f"\nAGREEMENT prometheus={a}\n          direct    ={b}")
        for name in SIGNALS:
            assert b[name] == pytest.approx(a[name], rel=0.15), (name, a, b)
        assert from_direct.replicas == from_prom.replicas, (from_prom.reason, from_direct.reason)
        assert abs(from_direct.routing_temperature - from_prom.routing_temperature) <= 0.05
