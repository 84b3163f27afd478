"""The operator's profile is rescaled to the throughput measured on this machine, and stays valid."""

from __future__ import annotations

import json

import jsonschema
import pytest

from thermostat.control.profile import parse_profile
from thermostat.profiles import default_profile_path, profile_schema
from thermostat_stack.calibration import calibrated_profile
from thermostat_stack.capacity import Capacity
from thermostat_stack.scenarios import RequestShape

pytestmark = pytest.mark.fast


def test_the_profile_matches_both_measurements_and_keeps_its_quality_figures() -> None:
    served = json.loads(default_profile_path().read_text())
    t_min = float(served["t_min"])
    capacity = Capacity(0.4, 0.42, t_min, RequestShape(), 8, served, exact_tokens_per_s=8.0, tmin_tokens_per_s=8.4)
    calibrated = calibrated_profile(served, capacity)
    jsonschema.validate(calibrated, profile_schema())
    profile = parse_profile(calibrated)
    assert profile.tokens_per_s(1.0, 1) == pytest.approx(8.0)
    assert profile.tokens_per_s(t_min, 1) == pytest.approx(8.4)
    assert [p["top1_agreement"] for p in calibrated["points"]] == [p["top1_agreement"] for p in served["points"]]
    assert "rescaled to this machine" in calibrated["device"]
    assert served["device"] in calibrated["device"]


def test_without_a_measurement_the_profile_is_served_as_is() -> None:
    served = json.loads(default_profile_path().read_text())
    assert calibrated_profile(served, Capacity(0.4, 0.4, 1.0, RequestShape(), 8, served)) is served


def test_the_capacity_probe_reads_the_runtime_temperature_gauge_from_real_exposition() -> None:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    from thermostat_stack.capacity import TEMPERATURE_GAUGE, gauge_value

    registry = CollectorRegistry()
    gauge = Gauge(TEMPERATURE_GAUGE, "routing temperature", registry=registry)
    text = generate_latest(registry).decode()
    assert gauge_value(text, TEMPERATURE_GAUGE) == 0.0
    gauge.set(0.05)
    assert gauge_value(generate_latest(registry).decode(), TEMPERATURE_GAUGE) == 0.05
    assert gauge_value("# nothing here\n", TEMPERATURE_GAUGE) is None
