"""One control run of one RoutedModel: observe → decide → (Enforce) apply → one status patch.

Synchronous (the Kubernetes and Prometheus clients are); the Kopf daemon calls ``run_once`` in a
worker thread every control period. Reads the RoutedModel afresh each run, so spec edits take effect
at the next period. Policies (docs/operator.md):
- manual replica change: adopted as the starting point of the next decision, reported by an Event;
- another scaler (HPA, KEDA ScaledObject) on the Deployment: ``Conflict=True``, replicas untouched;
- Recommend mode: status only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thermostat.api.spec import Mode, RoutedModelSpec
from thermostat.api.status import RoutedModelStatus, Settings
from thermostat.checks import parse_spec, spec_problems
from thermostat.control import MEMORY_VERSION, Decision, Profile, decide
from thermostat.control.types import Verdict
from thermostat.kube import Kube, ObjectRef, list_pods, mark_for_removal, other_scalers
from thermostat.observe import MetricsSources, Workload, build_observation
from thermostat.overrides import OverrideTracker
from thermostat.render import format_routing_temperature, routing_configmap_name
from thermostat.scaledown import pods_to_remove
from thermostat.settings import OperatorSettings
from thermostat.status import Health, RunOutcome, build_status, conflict_verdict, parse_status, status_patch
from thermostat.status.conditions import CONFLICT, OTHER_SCALER, READY, REPLICAS_OVERRIDDEN
from thermostat.telemetry import ACTUATIONS, DECISIONS, LOOP_DURATION, QUERY_ERRORS, SINCE_GOOD_OBSERVATION
from thermostat.workload import configmap_temperature, target_deployment_name

logger = logging.getLogger(__name__)
DEFAULT_PERIOD_S = 15.0


@dataclass(frozen=True)
class Subject:
    """The RoutedModel a run is about, as read at its start."""

    body: dict[str, Any]
    namespace: str
    name: str
    generation: int | None
    previous: RoutedModelStatus | None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Subject:
        meta = body["metadata"]
        return cls(body, meta["namespace"], meta["name"], meta.get("generation"), parse_status(body.get("status")))

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(namespace=self.namespace, name=self.name, uid=self.body["metadata"].get("uid", ""))


class Controller:
    """Per-process context shared by every RoutedModel's loop."""

    def __init__(
        self, kube: Kube, settings: OperatorSettings, profile: Profile, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.kube, self.settings, self.profile, self.clock = kube, settings, profile, clock
        self.sources = MetricsSources(kube, settings)
        self._last_good: dict[tuple[str, str], float] = {}
        self.overrides = OverrideTracker()

    def period_s(self, spec: RoutedModelSpec | None) -> float:
        period = spec.behavior.period_seconds if spec else DEFAULT_PERIOD_S
        return max(float(period), self.settings.min_period_seconds)

    def validated_spec(self, subject: Subject) -> tuple[RoutedModelSpec | None, str | None]:
        """The spec, or what to fix (schema-level or deeper)."""
        spec, problem = parse_spec(subject.body.get("spec"))
        if spec is None:
            return None, problem
        problems = spec_problems(spec, default_prometheus_url=self.settings.prometheus_url)
        return (spec, "; ".join(problems)) if problems else (spec, None)

    def write_status(self, subject: Subject, spec: RoutedModelSpec | None, run: RunOutcome) -> RoutedModelStatus:
        """Assemble and write the status in one patch; Events for Ready turning False with a new reason."""
        if spec is None:  # an unparseable spec: only the Ready condition can be said
            status = build_status(subject.previous, _PLACEHOLDER_SPEC, run)
            status.display = None
        else:
            status = build_status(subject.previous, spec, run)
        self.kube.patch_routedmodel_status(subject.namespace, subject.name, status_patch(status))
        self._event_on_ready_change(subject, status)
        return status

    def _event_on_ready_change(self, subject: Subject, status: RoutedModelStatus) -> None:
        before = next((c for c in (subject.previous.conditions if subject.previous else []) if c.type == READY), None)
        after = next((c for c in status.conditions if c.type == READY), None)
        if after is None or after.status == "True" or after.reason == "WaitingForReplicas":
            return  # pods starting is normal; Events are for what a person must fix
        if before is None or (before.reason, before.message) != (after.reason, after.message):
            self.kube.post_event(subject.ref, reason=after.reason, message=after.message, warning=True)

    def run_once(self, namespace: str, name: str) -> float:
        """One control run; returns the seconds to wait before the next (from the live spec)."""
        started = time.monotonic()
        body = self.kube.read_routedmodel(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.sources.forget(namespace, name)
            self.overrides.forget((namespace, name))
            return DEFAULT_PERIOD_S
        subject = Subject.from_body(body)
        spec, problem = self.validated_spec(subject)
        try:
            if spec is None or problem:
                self.report_invalid(subject, spec, problem or "invalid spec")
            else:
                self._control(subject, spec)
        finally:
            LOOP_DURATION.observe(time.monotonic() - started)
        return self.period_s(spec)

    def report_invalid(self, subject: Subject, spec: RoutedModelSpec | None, problem: str) -> None:
        current = subject.previous.current if subject.previous and subject.previous.current else Settings()
        run = RunOutcome(
            now=self.clock(), generation=subject.generation, current=current, health=Health(invalid_spec=problem)
        )
        self.write_status(subject, spec, run)

    def _control(self, subject: Subject, spec: RoutedModelSpec) -> None:
        now = self.clock()
        deployment = self.kube.read("Deployment", subject.namespace, target_deployment_name(subject.name, spec))
        if deployment is None:
            self._report_missing_deployment(subject, spec, now)
            return
        workload = Workload.from_deployment(deployment)
        configmap_name = routing_configmap_name(subject.name, spec)
        configmap = self.kube.read("ConfigMap", subject.namespace, configmap_name)
        previous = subject.previous.current if subject.previous else None
        temperature = configmap_temperature(configmap) or (
            previous.routing_temperature
            if previous and previous.routing_temperature
            else spec.quality.max_routing_temperature
        )
        conflict, conflict_reason = self._conflict(subject, previous, workload)
        self._report_manual_change(subject, previous, workload, conflict)
        signals = self.sources.observe(subject.namespace, subject.name, spec, now=now)
        for error in signals.errors.values():
            QUERY_ERRORS.labels(subject.namespace, subject.name, error.reason).inc()
        observation = build_observation(now, temperature, workload, signals, window_s=float(spec.slo.window_seconds))
        memory = subject.previous.memory.state if subject.previous and subject.previous.memory else None
        decision = decide(observation, spec, memory, now, profile=self.profile)
        enforce = spec.mode == Mode.ENFORCE
        applied_t, applied_n = self._actuate(
            subject, spec, decision, workload, temperature, enforce=enforce, conflict=conflict
        )
        if decision.memory_reset:
            self.kube.post_event(subject.ref, reason="MemoryReset", message=decision.reason, warning=True)
        self._account(subject, decision, now, enforce=enforce)
        run = RunOutcome(
            now=now,
            generation=subject.generation,
            current=Settings(routing_temperature=applied_t, replicas=applied_n, ready_replicas=workload.ready_replicas),
            health=Health(
                ready_replicas=workload.ready_replicas,
                replicas=applied_n,
                conflict=conflict,
                metrics_problem=_metrics_problem(decision),
            ),
            observation=observation,
            decision=decision,
            applied=enforce and not decision.held and (conflict is None or decision.replicas == workload.replicas),
            memory_version=MEMORY_VERSION,
            verdicts={CONFLICT: conflict_verdict(conflict, reason=conflict_reason)},
        )
        self.write_status(subject, spec, run)

    def _actuate(
        self,
        subject: Subject,
        spec: RoutedModelSpec,
        decision: Decision,
        workload: Workload,
        temperature: float,
        *,
        enforce: bool,
        conflict: str | None,
    ) -> tuple[float, int]:
        """Apply the decision in Enforce mode; returns the settings in force afterwards."""
        if not enforce:
            return temperature, workload.replicas
        new_t = decision.routing_temperature
        if format_routing_temperature(new_t) != format_routing_temperature(temperature):
            configmap = routing_configmap_name(subject.name, spec)
            patch = {"data": {"routing_temperature": format_routing_temperature(new_t)}}
            self.kube.patch("ConfigMap", subject.namespace, configmap, patch)
            ACTUATIONS.labels(subject.namespace, subject.name, "temperature").inc()
            self.kube.post_event(
                subject.ref,
                reason="RoutingTemperatureChanged",
                message=f"{temperature:.2f}→{new_t:.2f}: {decision.reason}",
            )
        else:
            new_t = temperature
        replicas = workload.replicas
        if decision.replicas != replicas and conflict is None:
            if decision.replicas < replicas:
                pods = list_pods(self.kube, subject.namespace, workload.selector)
                mark_for_removal(self.kube, subject.namespace, pods_to_remove(pods, replicas - decision.replicas))
            self.kube.scale_deployment(subject.namespace, workload.name, decision.replicas)
            ACTUATIONS.labels(subject.namespace, subject.name, "replicas").inc()
            self.kube.post_event(
                subject.ref, reason="ReplicasChanged", message=f"{replicas}→{decision.replicas}: {decision.reason}"
            )
            replicas = decision.replicas
        return new_t, replicas

    def _conflict(self, subject: Subject, previous: Settings | None, workload: Workload) -> tuple[str | None, str]:
        """Another scaler on the Deployment, or something undoing our replica changes (and which)."""
        scalers = other_scalers(self.kube, subject.namespace, workload.name)
        applied = [d for d in (subject.previous.decisions if subject.previous else []) if d.applied]
        overridden = self.overrides.observe(
            (subject.namespace, subject.name),
            generation=subject.generation,
            ours=applied[-1].replicas if applied else None,
            previous=previous.replicas if previous else None,
            live=workload.replicas,
        )
        if scalers:
            return ", ".join(scalers) + " also scale(s) this Deployment", OTHER_SCALER
        return overridden, REPLICAS_OVERRIDDEN

    def _report_manual_change(
        self, subject: Subject, previous: Settings | None, workload: Workload, conflict: str | None
    ) -> None:
        """A replica count set outside Thermostat is adopted as the next run's starting point, and said."""
        if previous is None or previous.replicas is None or previous.replicas == workload.replicas or conflict:
            return
        self.kube.post_event(
            subject.ref,
            reason="ReplicasChangedExternally",
            message=f"Deployment {workload.name} replicas set to {workload.replicas} outside Thermostat "
            f"(last seen {previous.replicas}): taken as the starting point of the next decision",
            warning=True,
        )

    def _report_missing_deployment(self, subject: Subject, spec: RoutedModelSpec, now: float) -> None:
        name = target_deployment_name(subject.name, spec)
        health = (
            Health(target_missing=f"{subject.namespace}/{name}")
            if spec.target_ref
            else Health(apply_error=None, replicas=spec.replicas.min)
        )
        current = subject.previous.current if subject.previous and subject.previous.current else Settings()
        self.write_status(
            subject, spec, RunOutcome(now=now, generation=subject.generation, current=current, health=health)
        )

    def _account(self, subject: Subject, decision: Decision, now: float, *, enforce: bool) -> None:
        key = (subject.namespace, subject.name)
        mode = "Enforce" if enforce else "Recommend"
        DECISIONS.labels(subject.namespace, subject.name, mode, str(decision.held).lower()).inc()
        if not decision.held:
            self._last_good[key] = now
        since = now - self._last_good.get(key, now)
        SINCE_GOOD_OBSERVATION.labels(subject.namespace, subject.name).set(since)


def _metrics_problem(decision: Decision) -> str | None:
    verdict: Verdict | None = decision.conditions.get("MetricsAvailable")
    return verdict.message if verdict is not None and verdict.status != "True" else None


# Used only to assemble the Ready condition of a spec that does not parse (display is dropped).
_PLACEHOLDER_SPEC = RoutedModelSpec.model_validate(
    {"model": {"image": "-"}, "slo": {"targetSeconds": 1.0}, "replicas": {"max": 1}}
)
