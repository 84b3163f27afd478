"""The law under the Observation contract: Missing holds and never scales down, Idle is a known zero
load, and the staleness clock is the observation's own time (its newest sample's)."""

from __future__ import annotations

import pytest
from control_plant import assumed_profile, make_spec
from observations import observed

from thermostat.control import decide
from thermostat.control.signals import Idle, Missing

pytestmark = pytest.mark.fast
PROFILE = assumed_profile()
SPEC = make_spec(replicas={"min": 1, "max": 8}, behavior={"scaleDown": {"stabilizationWindowSeconds": 0}})


def test_an_idle_window_is_zero_load_and_scales_down() -> None:
    idle = observed(time=100.0, routing_temperature=1.0, replicas=4, ready_replicas=4,
                    latency_s=Idle(100.0), request_rate=Idle(100.0))  # fmt: skip
    decision = decide(idle, SPEC, None, 100.0, profile=PROFILE)
    assert not decision.held
    assert decision.replicas < 4
    assert decision.conditions["SLOMet"].reason == "Idle"
    assert decision.conditions["MetricsAvailable"].status == "True"


def test_a_missing_latency_holds_and_says_why() -> None:
    unknown = observed(time=100.0, routing_temperature=1.0, replicas=4, ready_replicas=4,
                       latency_s=Missing("NotANumber: NaN"), request_rate=0.0)  # fmt: skip
    decision = decide(unknown, SPEC, None, 100.0, profile=PROFILE)
    assert decision.held
    assert decision.replicas == 4
    metrics = decision.conditions["MetricsAvailable"]
    assert (metrics.status, metrics.reason) == ("False", "MetricsMissing")
    assert "latency (NotANumber: NaN)" in metrics.message


def test_an_observation_older_than_the_limit_is_stale_whatever_its_signals_say() -> None:
    old = observed(time=0.0, routing_temperature=1.0, replicas=4, ready_replicas=4, latency_s=0.2, request_rate=0.0)
    decision = decide(old, SPEC, None, 61.0, profile=PROFILE)  # metricsMaxAgeSeconds 60
    assert decision.held
    assert decision.conditions["MetricsAvailable"].reason == "MetricsStale"
