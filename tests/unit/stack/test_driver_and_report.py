"""The load driver counts every request once; the report's figures come from the decision log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from thermostat_stack.capacity import Capacity
from thermostat_stack.endpoints import EndpointPool
from thermostat_stack.loaddriver import LoadDriver
from thermostat_stack.recorder import DecisionLog, Sample
from thermostat_stack.report import write_report
from thermostat_stack.scenarios import Arrival, OfferedLoad, RequestShape
from thermostat_stack.setup import example_path, load_manifest, parse_spec
from thermostat_stack.summary import RunRecord, first_scale_up, first_temperature_drop, slo_attainment

REQUIRED_KEYS = {
    "requests_total",
    "requests_ok",
    "requests_rejected",
    "requests_failed",
    "slo_attainment_windows",
    "temperature_min",
    "replicas_max",
    "burst_start_s",
    "first_temperature_drop_s",
    "first_scale_up_s",
    "decisions",
    "capacity_rps_exact",
    "capacity_rps_tmin",
}


async def _replica(statuses: list[int]) -> web.AppRunner:
    """An HTTP endpoint answering completions with the given status codes in turn (the driver's counterpart)."""
    answers = iter(statuses)

    async def completions(_request: web.Request) -> web.Response:
        status = next(answers)
        usage = {"completion_tokens": 3, "routing_temperature": 0.75}
        body = {"usage": usage} if status == 200 else {"error": {"message": "no"}}
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


@pytest.mark.fast
async def test_every_request_ends_in_exactly_one_outcome() -> None:
    runner = await _replica([200, 429, 200, 500])
    port = runner.addresses[0][1]
    pool = EndpointPool()
    pool.add("ns/a", f"http://127.0.0.1:{port}")
    driver = LoadDriver(pool)
    arrivals = tuple(Arrival(0.01 * i, 8, 4) for i in range(4))
    try:
        await driver.run(OfferedLoad("t", arrivals, 0.1, None, "test"))
    finally:
        await runner.cleanup()
    stats = driver.stats
    assert (stats.sent, stats.ok, stats.rejected, stats.failed) == (4, 2, 1, 1)
    assert stats.sent == stats.ok + stats.rejected + stats.failed
    assert pool.total_in_flight() == 0
    assert next(iter(stats.failure_reasons)).startswith("HTTP 500")
    # An ok reply keeps the temperature it was served at; the others have none.
    assert sorted((r.outcome, r.routing_temperature) for r in stats.records) == [
        ("failed", None), ("ok", 0.75), ("ok", 0.75), ("rejected", None)]  # fmt: skip


@pytest.mark.fast
async def test_with_no_ready_replica_a_request_fails_and_says_why() -> None:
    driver = LoadDriver(EndpointPool())
    await driver.run(OfferedLoad("t", (Arrival(0.0, 8, 4),), 0.01, None, "test"))
    assert driver.stats.failed == 1
    assert driver.stats.failure_reasons["no ready replica"] == 1


def _decision(t: float, temperature: float, replicas: int, changed: bool = True) -> DecisionLog:
    return DecisionLog(t, temperature, replicas, "why", changed, changed, None, None)


@pytest.mark.fast
def test_first_drop_and_scale_up_are_counted_from_the_burst() -> None:
    decisions = [
        _decision(0, 1.0, 1),
        _decision(3, 0.8, 1),
        _decision(6, 0.8, 1, False),
        _decision(21, 0.5, 1),
        _decision(24, 0.5, 2),
        _decision(27, 0.6, 2),
    ]
    assert first_temperature_drop(decisions, after_s=20) == decisions[3]
    assert first_scale_up(decisions, after_s=20) == decisions[4]
    assert first_temperature_drop(decisions, after_s=None) == decisions[1]


@pytest.mark.fast
def test_slo_attainment_counts_windows_with_a_reading() -> None:
    samples = [Sample(t, 0, 0, 0, 0, 0, latency_s=lat) for t, lat in [(9, 1.0), (19, 9.0), (29, 2.0), (39, None)]]
    attainment, windows = slo_attainment(samples, target_s=5, window_s=10, end_s=40)
    assert windows == 3
    assert attainment == pytest.approx(2 / 3)


@pytest.mark.fast
def test_the_summary_line_counts_windows_not_the_share() -> None:
    from thermostat_stack.report import slo_windows_text

    slo = parse_spec(load_manifest(None)).slo
    text = slo_windows_text({"slo_windows_met": 6, "slo_windows": 6, "slo_attainment_windows": 1.0}, slo)
    assert text.startswith("met in 6 of 6 windows")  # issue 13: it said "met in 1 of 6" for attainment 1.0
    assert text.endswith("(100%)")


@pytest.mark.fast
def test_the_example_fits_the_local_frame() -> None:
    manifest = load_manifest(None)
    spec = parse_spec(manifest)
    assert spec.replicas.max <= 2
    assert spec.model is not None
    assert spec.model.resources.gpus == 0
    assert example_path().name == "local-stack.yaml"


@pytest.mark.slow
def test_the_report_has_every_plot_and_the_summary_keys(tmp_path: Path) -> None:
    manifest = yaml.safe_load(example_path().read_text())
    spec = parse_spec(manifest)
    load = OfferedLoad("burst", tuple(Arrival(float(t), 8, 4) for t in range(60)), 60, 20, "test load")
    samples = [
        Sample(
            float(t),
            t,
            t,
            0,
            0,
            1,
            latency_s=1.0,
            power_w=100,
            power_source="estimate",
            quality_agreement=0.99,
            pod_temperature=1.0,
            temperature=1.0,
            replicas=1,
            ready_replicas=1,
        )
        for t in range(60)
    ]
    driver = LoadDriver(EndpointPool())
    run = RunRecord(
        "chat",
        "default",
        spec,
        load,
        Capacity(1.0, 1.3, 0.4, RequestShape(), 3),
        driver.stats,
        samples,
        [_decision(0, 1.0, 1), _decision(21, 0.6, 1), _decision(30, 0.6, 2)],
    )
    summary = write_report(run, tmp_path)
    assert set(json.loads((tmp_path / "summary.json").read_text())) >= REQUIRED_KEYS
    assert summary["first_temperature_drop_s"] == 21
    assert summary["first_scale_up_s"] == 30
    for name in ("load", "latency", "power", "temperature", "replicas", "quality", "overview"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert "estimated" in (tmp_path / "summary.md").read_text()


@pytest.mark.fast
def test_the_live_view_shows_latency_against_the_slo_and_estimated_power() -> None:
    from rich.console import Console

    from thermostat_stack.live import render_view
    from thermostat_stack.recorder import Recorder

    spec = parse_spec(yaml.safe_load(example_path().read_text()))
    recorder = Recorder(None, "http://unused", "default", "chat", spec, LoadDriver(EndpointPool()))  # type: ignore[arg-type]
    recorder.samples.append(
        Sample(
            12.0,
            10,
            8,
            1,
            0,
            1,
            latency_s=6.0,
            power_w=650.0,
            power_source="estimate",
            temperature=0.6,
            pod_temperature=0.6,
            replicas=2,
            ready_replicas=1,
        )
    )
    recorder.decisions.append(DecisionLog(11.0, 0.6, 2, "p90 6.0s > SLO: temperature 1.00→0.60", True, True, 6.0, 1.0))
    console = Console(width=160, record=True)
    console.print(render_view(recorder, phase="burst", notes=["pod ready"]))
    text = console.export_text()
    assert "6.00s / SLO 5s (p90)" in text
    assert "650.0W / budget 1200W (estimated)" in text
    assert "2 desired, 1 ready" in text
    assert "temperature 1.00→0.60" in text
