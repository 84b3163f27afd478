"""One place for unknown: every way a source can answer, and the Reading | Idle | Missing it becomes."""

from __future__ import annotations

import pytest

from thermostat.control.signals import Idle, Missing, Reading, SignalValue
from thermostat.control.types import Signal
from thermostat.metrics import (
    MetricsError,
    NoDataError,
    NotANumberError,
    QueryRejectedError,
    Sample,
    Scope,
    SourceUnavailableError,
    StaleDataError,
    collect,
)
from thermostat.reconcile import Workload, build_observation

pytestmark = pytest.mark.fast
SCOPE = Scope("prod", "chat")
NOW = 10_000.0
Answer = float | Sample | MetricsError


class ScriptedSource:
    """A MetricsSource answering from a table: a value (1 s old), a Sample, or an error to raise."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def read(self, signal: str, scope: Scope, *, now: float) -> Sample:
        self.calls.append(signal)
        answer = self.answers.get(signal, NoDataError(f"no series for {signal}"))
        if isinstance(answer, MetricsError):
            raise answer
        return answer if isinstance(answer, Sample) else Sample(answer, age_s=1.0)


FAILURES: list[tuple[str, dict[str, Answer], str, SignalValue | str]] = [
    # (case, the source's answers, the signal judged, what it must be: a value, or a Missing reason's prefix)
    ("a fresh value", {Signal.POWER: Sample(300.0, age_s=4.0)}, Signal.POWER, Reading(300.0, NOW - 4.0)),
    ("a fresh zero rate is a reading", {Signal.REQUEST_RATE: 0.0}, Signal.REQUEST_RATE, Reading(0.0, NOW - 1.0)),
    ("query failed", {Signal.POWER: SourceUnavailableError("refused")}, Signal.POWER, "SourceUnavailable: refused"),
    ("query rejected", {Signal.POWER: QueryRejectedError("bad PromQL")}, Signal.POWER, "QueryRejected: bad PromQL"),
    ("no data", {}, Signal.POWER, "NoData: no series for power"),
    ("stale", {Signal.POWER: StaleDataError("95s old")}, Signal.POWER, "Stale: 95s old"),
    (
        "NaN latency without a request in the window",
        {Signal.SERVED_RATE: Sample(0.0, age_s=2.0), Signal.LATENCY: NotANumberError("NaN")},
        Signal.LATENCY,
        Idle(NOW - 2.0),
    ),
    (
        "NaN latency with requests in the window",
        {Signal.SERVED_RATE: 3.0, Signal.LATENCY: NotANumberError("NaN")},
        Signal.LATENCY,
        "NotANumber: NaN",
    ),
    (
        "NaN latency when the request rate is unknown",
        {Signal.SERVED_RATE: StaleDataError("old"), Signal.LATENCY: NotANumberError("NaN")},
        Signal.LATENCY,
        "NotANumber: NaN",
    ),
    (
        "NaN shadow KL without a shadow token",
        {Signal.SHADOW_TOKENS: 0.0, Signal.QUALITY_KL: NotANumberError("NaN")},
        Signal.QUALITY_KL,
        Idle(NOW - 1.0),
    ),
    (
        "NaN shadow agreement with shadow tokens",
        {Signal.SHADOW_TOKENS: 40.0, Signal.QUALITY: NotANumberError("NaN")},
        Signal.QUALITY,
        "NotANumber: NaN",
    ),
]


@pytest.mark.parametrize(("case", "answers", "signal", "expected"), FAILURES, ids=[f[0] for f in FAILURES])
def test_every_answer_becomes_exactly_one_signal_value(
    case: str, answers: dict[str, Answer], signal: str, expected: SignalValue | str
) -> None:
    value = collect(ScriptedSource(answers), SCOPE, now=NOW).get(signal)
    if isinstance(expected, str):
        assert isinstance(value, Missing), case
        assert value.reason.startswith(expected), value
    else:
        assert value == expected, case


def test_an_unreachable_backend_is_asked_once_and_every_signal_says_why() -> None:
    source = ScriptedSource({Signal.REQUEST_RATE: SourceUnavailableError("connection refused")})
    signals = collect(source, SCOPE, now=NOW)
    assert signals.unreachable
    assert source.calls == [Signal.REQUEST_RATE]
    assert len(signals.values) == len(Signal)
    assert all(isinstance(v, Missing) and v.reason.startswith("SourceUnavailable") for v in signals.values.values())


def test_the_observation_is_timed_by_its_newest_sample_not_the_clock() -> None:
    source = ScriptedSource({
        Signal.REQUEST_RATE: Sample(2.0, age_s=30.0),
        Signal.POWER: Sample(200.0, age_s=12.0),
        Signal.LATENCY: Sample(0.4, age_s=45.0),
    })  # fmt: skip
    signals = collect(source, SCOPE, now=NOW)
    workload = Workload(name="chat", replicas=2, ready_replicas=1, selector={}, service_account="default")
    observation = build_observation(NOW, 0.8, workload, signals, 60)
    assert observation.time == NOW - 12.0
    assert (observation.replicas, observation.ready_replicas, observation.window_s) == (2, 1, 60.0)
    assert observation.latency_s == Reading(0.4, NOW - 45.0)
    assert observation.missing_signals()[Signal.QUALITY].startswith("NoData")


def test_power_source_is_kept_only_with_a_power_reading() -> None:
    with_power = collect(ScriptedSource({Signal.POWER: Sample(90.0, 1.0, power_source="estimate")}), SCOPE, now=NOW)
    workload = Workload(name="chat", replicas=1, ready_replicas=1, selector={}, service_account="default")
    assert build_observation(NOW, 1.0, workload, with_power, 60).power_source == "estimate"
    without = collect(ScriptedSource({}), SCOPE, now=NOW)
    assert build_observation(NOW, 1.0, workload, without, 60).power_source is None
