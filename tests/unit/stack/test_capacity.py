"""Capacity is measured in alternating rounds, so load that drifts during the measurement cancels out."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from thermostat_stack.capacity import capacity_argv, measure_on
from thermostat_stack.interleave import Round, paired_throughput, round_order
from thermostat_stack.scenarios import RequestShape

pytestmark = pytest.mark.fast
T_MIN = 0.05
TMIN_COST = 0.8  # the fake runtime's time per request at T_min, relative to T = 1
DRIFT = 0.1  # each request takes 10 % longer than the one before: neighbours loading the cores


def test_rounds_alternate_and_each_pair_starts_where_the_last_ended() -> None:
    assert round_order(3) == ["exact", "tmin", "tmin", "exact", "exact", "tmin"]
    with pytest.raises(ValueError, match="at least one pair"):
        round_order(0)


def test_the_paired_median_sees_through_drift_that_a_sequential_measurement_takes_for_a_loss() -> None:
    order = round_order(6)
    rounds = [
        Round(side, 1, 24, (1 + DRIFT * i) * (TMIN_COST if side == "tmin" else 1.0)) for i, side in enumerate(order)
    ]
    paired = paired_throughput(rounds)
    assert paired.gain == pytest.approx(1 / TMIN_COST, rel=0.1)
    low, high = paired.spread
    assert low < paired.gain < high
    # T = 1 first, then T_min, under the same drift: T_min looks slower than T = 1.
    sequential = [(1 + DRIFT * i) * (TMIN_COST if i >= 6 else 1.0) for i in range(12)]
    assert sum(sequential[:6]) / sum(sequential[6:]) < 1


def test_rounds_that_do_not_pair_up_are_refused() -> None:
    with pytest.raises(ValueError, match="one round at each temperature"):
        paired_throughput([Round("exact", 1, 1, 1.0), Round("exact", 1, 1, 1.0), Round("tmin", 1, 1, 1.0)] * 2)
    with pytest.raises(ValueError, match="no round at T = 1"):
        paired_throughput([Round("tmin", 1, 1, 1.0)])


def test_the_capacity_runtime_gets_the_replicas_command_line(tmp_path: Path) -> None:
    argv = capacity_argv(["serve", "--host", "0.0.0.0", "--port", "8000", "--drain-timeout", "60"], 4321, tmp_path)
    line = " ".join(argv)
    assert "--threads 1" in line
    assert "--max-batch 1" in line
    assert "--drain-timeout 60" in line
    assert "--host 127.0.0.1 --port 4321" in line
    assert "0.0.0.0" not in line
    assert line.endswith(f"--routing-temperature-file {tmp_path}")


class FakeRuntime:
    """A runtime whose requests cost virtual seconds: less at T_min, more with every request (drift)."""

    def __init__(self, temperature_file: Path) -> None:
        self.file = temperature_file
        self.now = 0.0
        self.served: list[tuple[float, dict[str, object]]] = []

    def clock(self) -> float:
        return self.now

    def temperature(self) -> float:
        return min(1.0, max(T_MIN, float(self.file.read_text())))

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        temperature = self.temperature()
        self.served.append((temperature, body))
        self.now += (1 + DRIFT * len(self.served)) * (TMIN_COST if temperature < 1 else 1.0)
        return web.json_response({"usage": {"completion_tokens": body["max_tokens"]}})

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(text=f"thermostat_routing_temperature {self.temperature()}\n")

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m", "t_min": T_MIN}]})

    async def profile(self, _request: web.Request) -> web.Response:
        return web.json_response({"t_min": T_MIN, "points": []})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/routing/profile", self.profile)
        return app


async def test_measurement_alternates_temperatures_with_fixed_length_requests(tmp_path: Path) -> None:
    temperature_file = tmp_path / "routing_temperature"
    temperature_file.write_text("1.0\n")
    fake = FakeRuntime(temperature_file)
    runner = web.AppRunner(fake.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    shape = RequestShape(prompt_tokens=16, max_tokens=12)
    try:
        async with aiohttp.ClientSession() as session:
            capacity = await measure_on(
                session, url, temperature_file, shape, pairs=6, requests_per_round=1, clock=fake.clock
            )
    finally:
        await runner.cleanup()
    assert capacity.t_min == T_MIN
    assert len(capacity.ratios) == 6
    assert capacity.gain == pytest.approx(1 / TMIN_COST, rel=0.1)
    assert capacity.tmin_rps == pytest.approx(capacity.exact_rps * capacity.gain)
    counted = [t for t, _ in fake.served[2:]]  # after one warm-up request at each temperature
    assert counted == [1.0 if side == "exact" else T_MIN for side in round_order(6)]
    assert all(body["ignore_eos"] and body["max_tokens"] == 12 for _, body in fake.served)
