"""A change of ``spec.quality.maxQualityLossPercent`` is staged as a fall of the operating point.

The law's operating point is the lowest-energy temperature within the quality budget
(``thermostat.control.bounds``, the committed profile): a larger budget moves it down. With
``spec.rollout`` a move of more than ``temperatureStep`` runs on canary pods first; a smaller one, or
a smaller budget (a rise: less quality spent), reaches every pod at once. Through the real reconcile
(the cluster of ``test_rollout_reconcile``).
"""

from __future__ import annotations

import pytest
from tests.unit.test_rollout_reconcile import SPEC, Cluster

from thermostat.api import RoutedModelSpec
from thermostat.control.bounds import temperature_bounds
from thermostat.profiles import load_profile
from thermostat.render.objects import format_routing_temperature

pytestmark = pytest.mark.fast


def with_budget(percent: float) -> RoutedModelSpec:
    raw = SPEC.model_dump(mode="json", by_alias=True)
    raw["quality"]["maxQualityLossPercent"] = percent
    return RoutedModelSpec.model_validate(raw)


def operating_point(spec: RoutedModelSpec) -> float:
    return temperature_bounds(spec, load_profile()).t_op


def settled_at(percent: float) -> tuple[Cluster, float]:
    """A cluster whose every pod serves the operating point of a ``percent`` budget, nothing staged."""
    cluster = Cluster()
    cluster.spec = with_budget(percent)
    t_op = operating_point(cluster.spec)
    cluster.data["routing_temperature"] = format_routing_temperature(t_op)
    cluster.run(1000.0, law=t_op, op=t_op)
    assert not cluster.on_track("canary")
    return cluster, t_op


def test_a_larger_quality_budget_is_staged_on_canary_pods() -> None:
    cluster, before = settled_at(1.0)
    cluster.spec = with_budget(5.0)
    after = operating_point(cluster.spec)
    assert before - after > cluster.spec.rollout.temperature_step  # type: ignore[union-attr]
    cluster.run(1015.0, law=after, op=after)
    assert cluster.rollout()["phase"] == "Progressing"
    served = cluster.served()
    assert {round(served[p], 4) for p in cluster.on_track("stable")} == {round(before, 4)}
    assert {round(served[p], 4) for p in cluster.on_track("canary")} == {round(after, 4)}


def test_a_budget_change_within_the_step_reaches_every_pod_at_once() -> None:
    cluster, before = settled_at(1.0)
    cluster.spec = with_budget(2.0)
    after = operating_point(cluster.spec)
    assert 0 < before - after <= cluster.spec.rollout.temperature_step  # type: ignore[union-attr]
    cluster.run(1015.0, law=after, op=after)
    assert not cluster.on_track("canary")
    assert {round(t, 4) for t in cluster.served().values()} == {round(after, 4)}


def test_a_smaller_budget_is_a_rise_and_reaches_every_pod_at_once() -> None:
    cluster, before = settled_at(5.0)
    cluster.spec = with_budget(1.0)
    after = operating_point(cluster.spec)
    assert after > before
    cluster.run(1015.0, law=after, op=after)
    assert not cluster.on_track("canary")
    assert {round(t, 4) for t in cluster.served().values()} == {round(after, 4)}


def test_a_lower_ceiling_that_moves_the_operating_point_down_is_staged() -> None:
    cluster, before = settled_at(1.0)
    raw = cluster.spec.model_dump(mode="json", by_alias=True)
    raw["quality"]["maxRoutingTemperature"] = 0.55
    cluster.spec = RoutedModelSpec.model_validate(raw)
    after = operating_point(cluster.spec)
    assert after == pytest.approx(0.55)
    cluster.run(1015.0, law=after, op=after)
    assert cluster.rollout()["candidateTemperature"] == pytest.approx(0.55)
    assert {round(cluster.served()[p], 4) for p in cluster.on_track("stable")} == {round(before, 4)}
