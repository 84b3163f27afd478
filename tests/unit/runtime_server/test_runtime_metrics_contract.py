"""The runtime's series match DESIGN §3's table: names, types, histogram buckets, labels; the text
exposition parses with prometheus-client's own parser. Pure: no model, no server."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from thermostat_runtime.metrics import RuntimeMetrics

pytestmark = pytest.mark.fast

LATENCY = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60]  # DESIGN §3's table
TPOT = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1]


def _families() -> dict:  # type: ignore[type-arg]
    metrics = RuntimeMetrics()
    metrics.gpu_power.labels(gpu="0", source="estimate").set(90)
    metrics.gpu_energy.labels(gpu="0", source="estimate").inc(1)
    return {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}


def _buckets(family) -> list[float]:  # type: ignore[no-untyped-def]
    return [float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"]


def test_histograms_have_the_contract_buckets() -> None:
    families = _families()
    assert _buckets(families["thermostat_request_duration_seconds"]) == LATENCY
    assert _buckets(families["thermostat_time_to_first_token_seconds"]) == LATENCY
    assert _buckets(families["thermostat_time_per_output_token_seconds"]) == TPOT


def test_labelled_series_carry_exactly_the_contract_labels() -> None:
    families = _families()
    codes = {s.labels["code"] for s in families["thermostat_requests"].samples if s.name.endswith("_total")}
    assert codes == {"200", "400", "429", "500"}
    kinds = {s.labels["kind"] for s in families["thermostat_tokens"].samples if s.name.endswith("_total")}
    assert kinds == {"prompt", "generated"}
    for name in ("thermostat_gpu_power_watts", "thermostat_gpu_energy_joules"):
        assert {tuple(sorted(s.labels)) for s in families[name].samples if not s.name.endswith("_created")} == {
            ("gpu", "source")
        }


def test_counters_are_exposed_with_the_total_suffix() -> None:
    names = {s.name for f in _families().values() for s in f.samples}
    for counter in ("requests", "tokens", "flops_executed", "flops_full", "gpu_energy_joules", "shadow_tokens",
                    "shadow_agree_tokens", "shadow_kl_nats"):  # fmt: skip
        assert f"thermostat_{counter}_total" in names
    for gauge in ("requests_in_flight", "queue_depth", "routing_temperature", "routing_config_stale",
                  "gpu_power_watts"):  # fmt: skip
        assert f"thermostat_{gauge}" in names


def _families_of(metrics: RuntimeMetrics) -> dict:  # type: ignore[type-arg]
    return {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}


def _request_duration_counts(metrics: RuntimeMetrics) -> dict[float, float]:
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    samples = families["thermostat_request_duration_seconds"].samples
    return {float(s.labels["le"]): s.value for s in samples if s.name.endswith("_bucket")}


def test_the_slo_target_is_one_more_boundary_of_every_latency_histogram() -> None:
    families = _families_of(RuntimeMetrics(slo_target_seconds=4.2))
    assert _buckets(families["thermostat_request_duration_seconds"]) == sorted([*LATENCY, 4.2])
    assert _buckets(families["thermostat_time_to_first_token_seconds"]) == sorted([*LATENCY, 4.2])
    assert _buckets(families["thermostat_time_per_output_token_seconds"]) == sorted([*TPOT, 4.2])


def test_the_slo_bucket_counts_exactly_the_requests_within_the_target() -> None:
    metrics = RuntimeMetrics(slo_target_seconds=4.2)
    for seconds in (1.0, 4.1, 4.2, 4.3, 4.9, 12.0):
        metrics.request_duration.observe(seconds)
    counts = _request_duration_counts(metrics)
    assert counts[4.2] == 3  # 1.0, 4.1 and 4.2 (le is inclusive); 3 s and 5 s bounds would say 1 and 5
    assert counts[5.0] == 5


def test_a_target_already_a_boundary_leaves_the_contract_buckets() -> None:
    families = _families_of(RuntimeMetrics(slo_target_seconds=5.0))
    assert _buckets(families["thermostat_request_duration_seconds"]) == LATENCY
