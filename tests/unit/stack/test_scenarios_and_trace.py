"""Offered load: built-in scenarios sized from capacity, and the Azure trace replayed and capped."""

from __future__ import annotations

from pathlib import Path

import pytest

from thermostat_stack.scenarios import burst_rate, burst_scenario, diurnal_scenario, scenario_load
from thermostat_stack.trace import TraceError, default_rate_scale, read_trace, trace_from, trace_load, trace_mean_rps

pytestmark = pytest.mark.fast


def test_burst_has_a_steady_phase_of_three_periods_then_a_burst_one_replica_cannot_carry() -> None:
    scenario = burst_scenario(1.0, 1.3, period_s=3, window_s=20)
    steady, burst, recovery = scenario.phases
    assert steady.duration_s >= 3 * 3
    assert steady.duration_s >= 20
    assert 1.3 < burst.start_rps < 2 * 1.0  # over one replica even at T_min, within two at T = 1
    assert steady.start_rps < 1.0
    assert recovery.start_rps == steady.start_rps
    assert scenario.phase_start_s("burst") == steady.duration_s


def test_a_burst_exceeds_capacity_at_t_min_by_a_margin_the_shared_cores_do_not_erase() -> None:
    assert burst_rate(1.0, 1.02) == pytest.approx(1.5)  # T_min gains little: 1.5x capacity at T = 1
    assert burst_rate(1.0, 1.5) == pytest.approx(1.65)  # T_min gains much: 1.1x capacity at T_min
    assert burst_rate(1.0, 2.0) == pytest.approx(1.8)  # within two replicas at T = 1


def test_a_duration_too_short_for_a_burst_is_refused_with_the_minimum() -> None:
    with pytest.raises(ValueError, match="at least"):
        burst_scenario(1.0, 1.5, period_s=5, window_s=20, duration_s=25)


def test_arrivals_are_reproducible_and_follow_the_rate() -> None:
    scenario = burst_scenario(2.0, 3.0, period_s=2, window_s=15, duration_s=400)
    first, second = scenario.arrivals(seed=1), scenario.arrivals(seed=1)
    assert first == second
    steady_end = scenario.phase_start_s("burst") or 0.0
    burst_end = steady_end + scenario.phases[1].duration_s
    steady_rate = sum(a.time_s < steady_end for a in first) / steady_end
    burst_rate_seen = sum(steady_end <= a.time_s < burst_end for a in first) / (burst_end - steady_end)
    assert burst_rate_seen > steady_rate


def test_diurnal_peaks_above_one_replica_at_exact() -> None:
    scenario = diurnal_scenario(1.0, 1.5, period_s=3, duration_s=300)
    assert max(p.end_rps for p in scenario.phases) > 1.0
    assert scenario.duration_s == pytest.approx(300)
    load = scenario_load(scenario)
    assert load.phase_at(0) == "night"
    assert load.phase_at(299) == "late night"
    assert load.phase_at(301) == "done"


def _trace(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    return path


def test_trace_replay_compresses_time_and_caps_tokens(tmp_path: Path) -> None:
    path = _trace(
        tmp_path,
        [
            "2023-11-16 18:15:46.6805900,374,44",
            "2023-11-16 18:15:56.6805900,20,500",
            "2023-11-16 18:16:06.6805900,5000,3",
        ],
    )
    requests = read_trace(path)
    assert [r.offset_s for r in requests] == pytest.approx([0, 10, 20])
    load = trace_load(requests, rate_scale=2.0, max_prompt_tokens=64, max_tokens=24)
    assert [a.time_s for a in load.arrivals] == pytest.approx([0, 5, 10])
    assert [(a.prompt_tokens, a.max_tokens) for a in load.arrivals] == [(64, 24), (20, 24), (64, 3)]
    assert len(trace_load(requests, rate_scale=2.0, max_prompt_tokens=64, max_tokens=24, duration_s=6).arrivals) == 2


def test_default_rate_scale_offers_a_fraction_of_capacity(tmp_path: Path) -> None:
    rows = [f"2023-11-16 18:{15 + i // 60:02d}:{i % 60:02d}.0,10,10" for i in range(0, 120, 2)]
    requests = read_trace(_trace(tmp_path, rows))
    scale = default_rate_scale(requests, capacity_exact_rps=0.8)
    assert trace_mean_rps(requests) * scale == pytest.approx(0.64, rel=0.05)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c\n1,2,3\n", "header"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\nnot a time,1,2\n", "line 2"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "no requests"),
    ],
)
def test_a_malformed_trace_is_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError, match=message):
        read_trace(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scenario": "spike"}, "burst or diurnal"),
        ({"rate_scale": 2.0}, "--trace replay only"),
        ({"duration_s": -1.0}, "positive"),
        ({"max_tokens": 0}, "at least 1"),
    ],
)
def test_contradictory_load_options_are_refused_before_anything_starts(
    options: dict[str, object], message: str
) -> None:
    from thermostat_stack.setup import SetupError, UpOptions, check_load_options

    with pytest.raises(SetupError, match=message):
        check_load_options(UpOptions(**options))  # type: ignore[arg-type]


def test_a_spec_beyond_the_local_frame_is_refused_with_the_fix(tmp_path: Path) -> None:
    from thermostat_stack.setup import SetupError, load_manifest

    path = tmp_path / "big.yaml"
    path.write_text(
        "apiVersion: thermostat.dev/v1alpha1\nkind: RoutedModel\nmetadata: {name: x}\n"
        "spec:\n  model: {image: i}\n  slo: {targetSeconds: 1}\n  replicas: {min: 1, max: 4}\n"
    )
    with pytest.raises(SetupError, match=r"set replicas.max <= 2"):
        load_manifest(path)
    path.write_text("apiVersion: thermostat.dev/v1alpha1\nkind: RoutedModel\nmetadata: {name: x}\nspec: {}\n")
    with pytest.raises(SetupError, match="thermostat validate"):
        load_manifest(path)


def test_the_steady_phase_lets_the_loop_settle_before_the_burst() -> None:
    scenario = burst_scenario(1.0, 1.2, period_s=3, window_s=30, settle_s=30, duration_s=170)
    assert scenario.phases[0].duration_s == 60
    assert scenario.duration_s == pytest.approx(170)


def test_replay_can_start_at_an_offset_into_the_trace(tmp_path: Path) -> None:
    rows = ["2023-11-16 18:15:00.0,10,5", "2023-11-16 18:16:00.0,20,6", "2023-11-16 18:16:30.0,30,7"]
    requests = read_trace(_trace(tmp_path, rows))
    later = trace_from(requests, 45.0)
    assert [(r.offset_s, r.context_tokens) for r in later] == [(15.0, 20), (45.0, 30)]
    load = trace_load(later, rate_scale=3.0, max_prompt_tokens=64, max_tokens=24)
    assert [a.time_s for a in load.arrivals] == pytest.approx([5.0, 15.0])
    assert trace_from(requests, 0.0) == requests


@pytest.mark.parametrize(("offset", "message"), [(-1.0, ">= 0"), (90.0, "past the trace's last request")])
def test_an_offset_outside_the_trace_is_refused_with_the_fix(tmp_path: Path, offset: float, message: str) -> None:
    from thermostat_stack.setup import SetupError, UpOptions, check_load_options

    path = _trace(tmp_path, ["2023-11-16 18:15:00.0,10,5", "2023-11-16 18:16:00.0,20,6"])
    with pytest.raises(TraceError, match=message):
        check_load_options(UpOptions(trace=path, trace_offset_s=offset))
    with pytest.raises(SetupError, match="--trace replay only"):
        check_load_options(UpOptions(trace_offset_s=30.0))


def test_the_slo_capacity_leaves_the_queueing_a_slow_replica_cannot_afford() -> None:
    from thermostat_stack.scenarios import slo_capacity

    quiet = slo_capacity(1 / 1.7, target_s=4.5, quantile=0.9) * 1.7  # share of the raw capacity
    loaded = slo_capacity(1 / 2.9, target_s=4.5, quantile=0.9) * 2.9
    assert 0.55 < quiet < 0.7
    assert 0.35 < loaded < quiet  # a request alone takes more of the target: less room to queue
    assert slo_capacity(1 / 5.0, target_s=4.5, quantile=0.9) == 0.0  # a lone request misses already
