"""The staged rollout of a fall of the operating temperature, pure: one run's step of the state machine.

The law publishes the temperature to apply now and the steady operating point. With ``spec.rollout``
a fall of the operating point larger than ``temperatureStep`` below the *promoted* point is a
candidate: canary pods serve it (``canary.routing_temperature``), stable pods keep the promoted point,
and each step's A/B analysis (``thermostat.control.abtest``) decides: pass → a larger canary share,
and after the last step promotion; failure beyond ``failureLimit`` → rollback; inconclusive beyond
``inconclusiveLimit`` → pause for a person; missing metrics → pause, beyond
``consecutiveErrorLimit`` → rollback. Never staged: a rise, a fall within the step, and the law's
drop below its operating point to hold the SLO (every pod at once, canary and stable alike).

A *router* rollout stages a new ``spec.model.image`` (the router the pods serve) the same way: a
canary Deployment runs the new image on the step's share of the law's replicas (the total), the stable
Deployment keeps the old one, both tracks serve the same temperature (the promoted point: a rise
or a burst drop reaches them at once), and the same analysis decides. A temperature fall waits while
a router rollout runs, and a router change waits while a temperature rollout runs (the stable
Deployment keeps its image meanwhile).

Everything lasting lives in ``RolloutStatus`` (status.rollout), so a restarted operator resumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from thermostat.api.spec import Rollout
from thermostat.api.status import (
    MAX_ROLLOUT_STEPS,
    RolloutAnalysisRecord,
    RolloutPhase,
    RolloutStatus,
    RolloutStepRecord,
    TrackFigures,
)
from thermostat.control import conditions as c
from thermostat.control.abtest import Analysis, Result, TrackJudged
from thermostat.control.types import Verdict

EPS = 1e-6
PROMOTE, ABORT = "promote", "abort"  # the values of the thermostat.dev/rollout annotation
ACTIVE = (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED)


def _with(state: RolloutStatus, **changes: Any) -> RolloutStatus:
    """A copy with some fields changed (the status models are pydantic, not dataclasses)."""
    return state.model_copy(update=changes)


def rfc3339(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class RolloutInput:
    """What one run knows that the rollout needs."""

    now: float
    law_temperature: float  # the law's temperature to apply now
    operating_temperature: float  # the law's steady operating point
    in_force: float  # the stable key's temperature now
    pods: tuple[str, ...] = ()  # the pods that serve (ready, not terminating)
    analysis: Analysis | None = None  # this run's A/B analysis, when one was due and measured
    metrics_missing: str | None = None  # why the due analysis could not be measured
    command: str | None = None  # promote / abort from the annotation
    slo_exact: bool = True  # the SLO target is a histogram bucket (else the share is interpolated)
    router: str | None = None  # spec.model.image (None: targetRef, no router rollout)
    served_router: str | None = None  # the image the stable Deployment serves now
    replicas: int = 0  # the law's replicas: stable and canary together


@dataclass(frozen=True)
class Note:
    """An Event to post."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class RolloutStep:
    """The run's rollout outcome: the two keys, the canary pods, the status, what to say."""

    status: RolloutStatus | None
    stable_temperature: float
    canary_temperature: float | None  # None: no canary key (every pod serves the stable one)
    canary_pods: tuple[str, ...]
    notes: tuple[Note, ...] = ()
    command_done: bool = False
    canary_replicas: int = 0  # a router rollout: the canary Deployment's share of the replicas (0: none)
    promote_router: str | None = None  # a router rollout promoted: the stable Deployment takes this image


def analysis_due(state: RolloutStatus | None, rules: Rollout | None, now: float) -> bool:
    """Whether this run measures the A/B figures (an outage keeps it due: every run retries)."""
    if state is None or rules is None or state.step_started is None:
        return False
    waiting = state.phase == RolloutPhase.PROGRESSING or state.pause_reason == c.ROLLOUT_PAUSED_METRICS
    return waiting and now - unix(state.step_started) >= rules.analysis.interval_seconds


def serve(law: float, operating: float, setpoint: float) -> float:
    """A track's temperature: the law's drop below its operating point reaches every pod, else the setpoint."""
    return law if law < operating - EPS else setpoint


def advance(state: RolloutStatus | None, rules: Rollout, inp: RolloutInput) -> RolloutStep:
    """This run's step of the rollout."""
    if state is not None and state.phase in ACTIVE:
        if state.candidate_router is not None and inp.operating_temperature > state.stable_temperature:
            # Both tracks of a router rollout serve the mark: a rise reaches them at once, a fall waits.
            state = _with(state, stable_temperature=round(inp.operating_temperature, 4))
        return _active(state, rules, inp)
    return _idle(state, rules, inp)


def router_change(state: RolloutStatus | None, inp: RolloutInput) -> bool:
    """A new router to stage: spec.model.image differs from the stable Deployment's, and was not rolled back."""
    if inp.router is None or inp.served_router is None or inp.router == inp.served_router:
        return False
    return state is None or inp.router != state.rejected_router


def _idle(state: RolloutStatus | None, rules: Rollout, inp: RolloutInput) -> RolloutStep:
    if router_change(state, inp):
        return _start_router(state, rules, inp)
    base = state.stable_temperature if state else inp.in_force
    t_op, law = inp.operating_temperature, inp.law_temperature
    if t_op >= base - rules.temperature_step - EPS:
        # A rise, or a fall within the step: at once, as without spec.rollout. Rises move the mark.
        kept = _with(state, stable_temperature=max(base, t_op)) if state else None
        return RolloutStep(kept, law, None, ())
    rejected = state.rejected_temperature if state else None
    if rejected is not None and abs(t_op - rejected) <= rules.temperature_step + EPS:
        return RolloutStep(state, serve(law, t_op, base), None, ())
    return _start(state, rules, inp, base)


def _start(state: RolloutStatus | None, rules: Rollout, inp: RolloutInput, base: float) -> RolloutStep:
    new = RolloutStatus(
        phase=RolloutPhase.PROGRESSING, started=rfc3339(inp.now), stable_temperature=base,
        candidate_temperature=round(inp.operating_temperature, 4), step=1, steps=len(rules.steps),
        canary_percent=rules.steps[0], step_started=rfc3339(inp.now),
        history=list(state.history) if state else [], rejected_router=state.rejected_router if state else None,
    )  # fmt: skip
    why = f"operating point {base:.2f}→{inp.operating_temperature:.2f} is a fall larger than {rules.temperature_step:g}"
    new = _record(new, inp.now, "Started", f"{why}: canary {rules.steps[0]}% of the pods")
    return _serving(new, inp, (Note("RolloutStarted", new.message),))


def _start_router(state: RolloutStatus | None, rules: Rollout, inp: RolloutInput) -> RolloutStep:
    new = RolloutStatus(
        phase=RolloutPhase.PROGRESSING, started=rfc3339(inp.now),
        stable_temperature=state.stable_temperature if state else inp.in_force, step=1, steps=len(rules.steps),
        canary_percent=rules.steps[0], step_started=rfc3339(inp.now),
        stable_router=inp.served_router, candidate_router=inp.router, history=list(state.history) if state else [],
        rejected_temperature=state.rejected_temperature if state else None,
    )  # fmt: skip
    why = f"router {inp.served_router} → {inp.router}: canary Deployment with {rules.steps[0]}% of the replicas"
    new = _record(new, inp.now, "Started", why)
    return _serving(new, inp, (Note("RolloutStarted", new.message),))


def _superseded(state: RolloutStatus, rules: Rollout, inp: RolloutInput) -> str | None:
    """Why the rollout has nothing left to stage (None: it goes on)."""
    if state.candidate_router is not None:
        if inp.router != state.candidate_router:
            return f"spec.model.image is now {inp.router}, not the candidate {state.candidate_router}"
        return None
    if inp.operating_temperature >= state.stable_temperature - rules.temperature_step - EPS:
        return f"the law's operating point is back at {inp.operating_temperature:.2f}: nothing to stage"
    return None


def _active(state: RolloutStatus, rules: Rollout, inp: RolloutInput) -> RolloutStep:
    if inp.command == ABORT:
        return _rolled_back(state, inp, "aborted by the thermostat.dev/rollout=abort annotation", manual=True)
    if inp.command == PROMOTE:
        return _promoted(state, inp, "promoted by the thermostat.dev/rollout=promote annotation")
    why = _superseded(state, rules, inp)
    if why is not None:
        ended = _end(state, inp, RolloutPhase.ROLLED_BACK, "Superseded", why)
        # A router's: a fall it held waits for the next run to be staged; a temperature's: back within the step.
        law = inp.law_temperature if state.candidate_router is None else None
        stable = law if law is not None else serve(inp.law_temperature, inp.operating_temperature,
                                                   state.stable_temperature)  # fmt: skip
        return RolloutStep(ended, stable, None, (), (Note("RolloutSuperseded", ended.message),))
    if _too_few(state, inp):
        return _paused_replicas(state, inp)
    if state.pause_reason == c.ROLLOUT_PAUSED_REPLICAS:
        state = _with(state, phase=RolloutPhase.PROGRESSING, step_started=rfc3339(inp.now), pause_reason=None)
        state = _record(state, inp.now, "Resumed", "two pods or more serve again: the interval restarts")
        return _serving(state, inp, (Note("RolloutResumed", state.message),))
    if inp.metrics_missing is not None:
        return _metrics_missing(state, rules, inp, inp.metrics_missing)
    if inp.analysis is not None:
        return _judged(state, rules, inp, inp.analysis)
    return _serving(state, inp, ())


def _judged(state: RolloutStatus, rules: Rollout, inp: RolloutInput, analysis: Analysis) -> RolloutStep:
    limits = rules.analysis
    state = _with(
        state, consecutive_errors=0, last_analysis=analysis_record(analysis, state, inp.now, exact=inp.slo_exact)
    )
    if analysis.result == Result.FAILED:
        state = _with(state, failures=state.failures + 1)
        if state.failures > limits.failure_limit:
            return _rolled_back(state, inp, f"analysis failed: {analysis.message}")
        return _next_interval(state, inp, "AnalysisFailed", f"failure {state.failures} of {limits.failure_limit} "
                              f"tolerated: {analysis.message}", warning=True)  # fmt: skip
    if analysis.result == Result.INCONCLUSIVE:
        state = _with(state, inconclusive=state.inconclusive + 1)
        if state.inconclusive > limits.inconclusive_limit:
            message = (
                f"{state.inconclusive} inconclusive analyses ({analysis.message}); "
                "promote or abort with the annotation thermostat.dev/rollout"
            )
            paused, notes = _pause(state, inp, c.ROLLOUT_PAUSED_INCONCLUSIVE, message)
            return _serving(paused, inp, notes)
        return _next_interval(state, inp, "AnalysisInconclusive", analysis.message)
    if state.step >= state.steps:
        return _promoted(state, inp, f"every step passed: {analysis.message}")
    percent = rules.steps[state.step]
    state = _with(state, step=state.step + 1, canary_percent=percent, phase=RolloutPhase.PROGRESSING)
    return _next_interval(state, inp, "Advanced", f"step {state.step - 1} passed ({analysis.message}): "
                          f"canary {percent}% of the pods")  # fmt: skip


def _next_interval(
    state: RolloutStatus, inp: RolloutInput, action: str, why: str, *, warning: bool = False
) -> RolloutStep:
    state = _with(state, phase=RolloutPhase.PROGRESSING, step_started=rfc3339(inp.now), pause_reason=None)
    state = _record(state, inp.now, action, why)
    return _serving(state, inp, (Note(f"Rollout{action}", why, warning=warning),))


def _metrics_missing(state: RolloutStatus, rules: Rollout, inp: RolloutInput, why: str) -> RolloutStep:
    errors = state.consecutive_errors + 1
    state = _with(state, consecutive_errors=errors)
    if errors > rules.analysis.consecutive_error_limit:
        return _rolled_back(state, inp, f"{errors} analyses in a row without metrics ({why})")
    message = f"no A/B figures ({why}); retried every run, never promoted meanwhile"
    paused, notes = _pause(state, inp, c.ROLLOUT_PAUSED_METRICS, message)
    return _serving(paused, inp, notes)


def _pause(
    state: RolloutStatus, inp: RolloutInput, reason: str, message: str
) -> tuple[RolloutStatus, tuple[Note, ...]]:
    """Paused for ``reason``: recorded, and an Event, once on entering it (not at every run)."""
    if state.phase == RolloutPhase.PAUSED and state.pause_reason == reason:
        return state, ()
    paused = _record(_with(state, phase=RolloutPhase.PAUSED, pause_reason=reason), inp.now, "Paused", message)
    return paused, (Note("RolloutPaused", f"{reason}: {message}", warning=True),)


def _too_few(state: RolloutStatus, inp: RolloutInput) -> bool:
    """A canary needs a stable pod beside it: two serving pods, or two replicas for a router's Deployment."""
    return (inp.replicas if state.candidate_router is not None else len(inp.pods)) < 2


def _paused_replicas(state: RolloutStatus, inp: RolloutInput) -> RolloutStep:
    count = inp.replicas if state.candidate_router is not None else len(inp.pods)
    message = f"{count} pod(s) serve; a canary needs a stable pod beside it"
    state, notes = _pause(state, inp, c.ROLLOUT_PAUSED_REPLICAS, message)
    stable = serve(inp.law_temperature, inp.operating_temperature, state.stable_temperature)
    return RolloutStep(_with(state, canary_pods=[]), stable, None, (), notes)


def _promoted(state: RolloutStatus, inp: RolloutInput, why: str) -> RolloutStep:
    if state.candidate_router is not None:
        ended = _end(state, inp, RolloutPhase.PROMOTED, "Promoted", why)
        ended = _with(ended, stable_router=state.candidate_router, rejected_router=None)
        stable = serve(inp.law_temperature, inp.operating_temperature, state.stable_temperature)
        return RolloutStep(ended, stable, None, (), (Note("RolloutPromoted", why),),
                           command_done=inp.command is not None, promote_router=state.candidate_router)  # fmt: skip
    if state.candidate_temperature is None:
        raise ValueError("a rollout in progress has a candidate temperature")
    ended = _end(state, inp, RolloutPhase.PROMOTED, "Promoted", why)
    ended = _with(ended, stable_temperature=state.candidate_temperature, rejected_temperature=None)
    stable = serve(inp.law_temperature, inp.operating_temperature, state.candidate_temperature)
    return RolloutStep(ended, stable, None, (), (Note("RolloutPromoted", why),), command_done=inp.command is not None)


def _rolled_back(state: RolloutStatus, inp: RolloutInput, why: str, *, manual: bool = False) -> RolloutStep:
    ended = _end(state, inp, RolloutPhase.ROLLED_BACK, "RolledBack", why)
    if state.candidate_router is not None:
        ended = _with(ended, rejected_router=state.candidate_router)
    else:
        ended = _with(ended, rejected_temperature=state.candidate_temperature)
    stable = serve(inp.law_temperature, inp.operating_temperature, state.stable_temperature)
    note = Note("RolloutAborted" if manual else "RolloutRolledBack", why, warning=True)
    return RolloutStep(ended, stable, None, (), (note,), command_done=manual)


def _end(state: RolloutStatus, inp: RolloutInput, phase: RolloutPhase, action: str, why: str) -> RolloutStatus:
    ended = _with(state, phase=phase, step=0, canary_percent=0, canary_pods=[], step_started=None, pause_reason=None)
    return _record(ended, inp.now, action, why)


def _serving(
    state: RolloutStatus, inp: RolloutInput, notes: tuple[Note, ...], *, command_done: bool = False
) -> RolloutStep:
    """Keep a rollout going: its canary pods (or replicas), and each track's temperature."""
    if _too_few(state, inp):
        return _paused_replicas(state, inp)
    if state.candidate_router is not None:
        count = canary_count(inp.replicas, state.canary_percent)
        stable = serve(inp.law_temperature, inp.operating_temperature, state.stable_temperature)
        return RolloutStep(state, stable, None, (), notes, command_done=command_done,
                           canary_replicas=count)  # fmt: skip
    candidate = state.candidate_temperature
    if candidate is None:
        raise ValueError("a rollout in progress has a candidate temperature")
    pods = choose_canary(inp.pods, tuple(state.canary_pods), state.canary_percent)
    state = _with(state, canary_pods=list(pods))
    stable = serve(inp.law_temperature, inp.operating_temperature, state.stable_temperature)
    canary = serve(inp.law_temperature, inp.operating_temperature, candidate)
    return RolloutStep(state, stable, min(canary, stable), pods, notes, command_done=command_done)


def choose_canary(pods: tuple[str, ...], current: tuple[str, ...], percent: int) -> tuple[str, ...]:
    """At least one pod, never all: the current canary pods first (no churn), then by name."""
    count = canary_count(len(pods), percent)
    ordered = [p for p in current if p in pods] + sorted(p for p in pods if p not in current)
    return tuple(sorted(ordered[:count]))


def canary_count(total: int, percent: int) -> int:
    """The canary's share of ``total`` pods: at least one, never all (``total`` ≥ 2)."""
    return min(max(math.ceil(percent * total / 100.0), 1), total - 1)


def _record(state: RolloutStatus, now: float, action: str, why: str) -> RolloutStatus:
    entry = RolloutStepRecord(time=rfc3339(now), action=action, canary_percent=state.canary_percent, reason=why)
    return _with(state, message=why, history=[*state.history, entry][-MAX_ROLLOUT_STEPS:])


def _figures(judged: TrackJudged | None) -> TrackFigures | None:
    if judged is None:
        return None
    s = judged.sample

    def pair(i: object) -> list[float]:
        return [round(i.low, 4), round(i.high, 4)] if i is not None else []  # type: ignore[attr-defined]

    return TrackFigures(
        requests=round(s.requests, 1), slo_share=_r(judged.slo_share), slo_share_interval=pair(judged.slo_interval),
        error_rate=_r(judged.error_rate), quality_loss_percent=_r(judged.loss_percent),
        quality_loss_interval=pair(judged.loss_interval), shadow_tokens=round(s.shadow_tokens, 1),
        energy_joules_per_request=_r(s.energy_j / s.requests) if s.energy_j is not None and s.requests > 0 else None,
    )  # fmt: skip


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def analysis_record(
    analysis: Analysis, state: RolloutStatus, now: float, *, exact: bool = True
) -> RolloutAnalysisRecord:
    started = unix(state.step_started) if state.step_started else now
    return RolloutAnalysisRecord(
        time=rfc3339(now), result=str(analysis.result), message=analysis.message, interval_seconds=now - started,
        slo_share_exact=exact, stable=_figures(analysis.stable), canary=_figures(analysis.canary),
    )  # fmt: skip


def rollout_verdict(state: RolloutStatus | None) -> Verdict:
    """The Rollout condition: True while canary pods serve a candidate."""
    if state is None:
        return Verdict(c.FALSE, c.ROLLOUT_IDLE, "nothing staged: every pod serves the same temperature")
    if state.phase == RolloutPhase.PROGRESSING:
        return Verdict(c.TRUE, c.ROLLOUT_PROGRESSING, f"step {state.step}/{state.steps}: {state.message}")
    if state.phase == RolloutPhase.PAUSED:
        return Verdict(c.TRUE, state.pause_reason or c.ROLLOUT_PAUSED_METRICS, state.message)
    reason = c.ROLLOUT_PROMOTED if state.phase == RolloutPhase.PROMOTED else c.ROLLOUT_ROLLED_BACK
    return Verdict(c.FALSE, reason, state.message)
