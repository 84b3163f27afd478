"""Quality as a budget (issue 13): the operating point, the floor only while the SLO is at risk, and
shadow-measured quality correcting the profile; scenario tests against control_plant's truth."""

from __future__ import annotations

import pytest
from control_plant import Plant, assumed_profile, make_spec

from thermostat.control import quality_loss_percent, temperature_bounds

pytestmark = pytest.mark.fast
PROFILE = assumed_profile()


def settle(plant: Plant, rate: float, periods: int = 80) -> None:
    for _ in range(periods):
        plant.step(rate)


def test_loss_percent_is_the_design_unit() -> None:
    assert quality_loss_percent(0.0) == 0.0
    assert quality_loss_percent(0.01) == pytest.approx(1.005, abs=1e-3)  # 100 × (e^0.01 − 1)


@pytest.mark.parametrize("budget", [1.0, 5.0])
def test_operating_point_is_the_lowest_energy_temperature_within_the_budget(budget: float) -> None:
    spec = make_spec(quality={"maxQualityLossPercent": budget})
    t_op = temperature_bounds(spec, PROFILE).t_op
    assert PROFILE.quality_loss_percent(t_op) <= budget + 1e-6
    assert PROFILE.quality_loss_percent(t_op - 0.01) > budget  # any lower spends more than the budget
    assert t_op < 1.0


def test_default_spec_serves_within_one_percent_in_steady_state() -> None:
    plant = Plant(PROFILE, make_spec(), replicas=3)  # no quality section at all
    settle(plant, 4.0)
    decision = plant.history[-1]
    assert decision.operating_temperature == pytest.approx(plant.temperature)
    assert PROFILE.quality_loss_percent(plant.temperature) <= 1.0 + 1e-6
    assert plant.temperature < 1.0  # it does save: the budget is spent, not left
    assert decision.conditions["QualityWithinBudget"].status == "True"
    assert decision.quality_loss_percent_mean is not None
    assert decision.quality_loss_percent_mean <= 1.0 + 1e-6


def test_floor_only_while_the_slo_is_at_risk_and_the_mean_loss_says_so() -> None:
    spec = make_spec(quality={"minRoutingTemperature": 0.05})
    plant = Plant(PROFILE, spec, replicas=2)
    settle(plant, 3.0)
    t_op = plant.temperature
    for _ in range(4):
        plant.step(7.0)  # a burst: the floor is in use
    burst = plant.history[-1]
    assert plant.temperature < t_op
    assert burst.conditions["QualityWithinBudget"].reason == "BelowOperatingPoint"
    assert burst.replicas > 2
    while plant.temperature < t_op - 1e-9 and plant.now < 3600:
        assert plant.step(7.0).replicas >= burst.replicas  # no scale-down while below the operating point
    assert plant.temperature == pytest.approx(t_op)
    memory = plant.memory or {}
    assert memory["quality_loss_integral"] / memory["quality_time_s"] > 1.0  # the burst's loss is counted


def test_measured_quality_worse_than_the_profile_raises_the_operating_point_into_the_budget() -> None:
    plant = Plant(PROFILE, make_spec(quality={"shadowFraction": 0.05}), replicas=3, quality_factor=3.0)
    naive = temperature_bounds(plant.spec, PROFILE).t_op
    settle(plant, 4.0, 160)
    assert plant.temperature > naive + 0.02
    true_loss = quality_loss_percent(plant.kl_nats())
    assert true_loss <= 1.0 * 1.15  # within the budget, up to the correction's convergence
    verdict = plant.history[-1].conditions["QualityWithinBudget"]
    assert verdict.reason in {"MeasuredWithinBudget", "MeasuredOverBudget"}
    assert "shadow-measured" in verdict.message
    assert (plant.memory or {})["quality_scale"] > 2.0


@pytest.mark.parametrize("fraction", [0.0, 0.0005])  # none, and ~24 shadow tokens a window (< 64)
def test_too_few_shadow_tokens_trust_the_profile_and_say_so(fraction: float) -> None:
    plant = Plant(PROFILE, make_spec(quality={"shadowFraction": fraction}), replicas=3, quality_factor=3.0)
    settle(plant, 4.0)
    verdict = plant.history[-1].conditions["QualityWithinBudget"]
    assert verdict.reason == "ProfileTrusted"
    assert "too few shadow tokens" in verdict.message
    assert (plant.memory or {})["quality_scale"] == 1.0
    assert plant.temperature == pytest.approx(temperature_bounds(plant.spec, PROFILE).t_op)


def test_an_unset_floor_protects_quality_and_an_explicit_one_is_obeyed() -> None:
    default = temperature_bounds(make_spec(), PROFILE)
    assert PROFILE.quality_loss_percent(default.t_lo) <= 10.0 + 1e-6  # 10 x the 1% budget, not T_min's 31%
    assert default.t_lo > PROFILE.t_min
    explicit = temperature_bounds(make_spec(quality={"minRoutingTemperature": 0.05}), PROFILE)
    assert explicit.t_lo == pytest.approx(0.05)
    assert explicit.t_op == pytest.approx(default.t_op)


def test_no_scale_down_while_the_temperature_is_below_the_operating_point() -> None:
    # A slow return (0.01 per period: 80 periods from the floor) outlasts the 300 s scale-down window.
    spec = make_spec(quality={"minRoutingTemperature": 0.05}, behavior={"maxTemperatureStepUp": 0.01})
    plant = Plant(PROFILE, spec, replicas=2)
    settle(plant, 3.0)
    t_op = plant.temperature
    for _ in range(20):
        plant.step(7.0)  # a burst: the temperature drops, replicas are added
    peak = plant.replicas
    assert plant.temperature < t_op - 0.2
    while plant.temperature < t_op - 1e-9 and plant.now < 7200:
        decision = plant.step(2.0)  # the load is gone: fewer replicas would do at the operating point
        assert decision.replicas >= peak, decision.reason
    assert plant.temperature == pytest.approx(t_op)
    for _ in range(40):
        plant.step(2.0)
    assert plant.replicas < peak  # once back at the operating point, the scale-down proceeds


def test_the_removed_alpha_field_is_refused_naming_its_replacement() -> None:
    with pytest.raises(ValueError, match="maxQualityLossPercent"):
        make_spec(quality={"maxQualityLossPoints": 1.0})
    assert make_spec().quality.max_quality_loss_percent == 1.0
    assert 0 < make_spec().quality.shadow_fraction <= 0.05  # "a few per cent" by default
