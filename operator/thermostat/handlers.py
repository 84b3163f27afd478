"""Thin Kopf handlers (``kopf run -m thermostat.handlers``): wire events to ``workload`` and ``loop``.

- create/update/resume: render and apply the owned objects (ownerReferences make deletion cascade);
- one daemon per RoutedModel: ``Controller.run_once`` every ``spec.behavior.periodSeconds``;
- startup: settings, JSON logs, the operator's /metrics, annotation-based progress storage (the
  status is a structural schema owned by ``thermostat.api``; Kopf must not write ``status.kopf``).
Handlers never return values: Kopf would store them in status.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from thermostat.api.resource import GROUP, PLURAL, VERSION
from thermostat.kube import ApiException, Kube, load_api_client
from thermostat.loop import Controller, Subject
from thermostat.profiles import load_profile
from thermostat.settings import LogFormat, OperatorSettings
from thermostat.status import Health, RunOutcome
from thermostat.telemetry import configure_logging, serve_metrics
from thermostat.workload import apply_workload

logger = logging.getLogger(__name__)
ANNOTATION_PREFIX = "thermostat.dev"
_state: dict[str, Controller] = {}


def controller() -> Controller:
    """The process's Controller (built at startup)."""
    return _state["controller"]


@kopf.on.startup()
def operator_startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Configure Kopf and build the shared Controller."""
    ours = OperatorSettings()
    configure_logging(json_logs=ours.log_format == LogFormat.JSON, level=ours.log_level)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    settings.posting.level = logging.WARNING  # our own Events say what happened; Kopf's only on trouble
    settings.watching.server_timeout = 60
    settings.networking.request_timeout = 30
    serve_metrics(ours.metrics_port, ours.metrics_host)
    kube = Kube(load_api_client(ours.kubeconfig))
    _state["controller"] = Controller(kube, ours, load_profile(ours.profile))
    logger.info("thermostat operator started (prometheus %s)", ours.prometheus_url or "per RoutedModel")


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(GROUP, VERSION, PLURAL)
async def routedmodel_apply(body: kopf.Body, **_: Any) -> None:
    """Render and apply the owned objects; an invalid spec is reported in status instead."""
    ctl = controller()
    raw = _plain(body)
    subject = Subject.from_body(raw)
    spec, problem = ctl.validated_spec(subject)
    if spec is None or problem:
        await asyncio.to_thread(ctl.report_invalid, subject, spec, problem or "invalid spec")
        return
    try:
        result = await asyncio.to_thread(apply_workload, ctl.kube, raw, spec)
    except ApiException as error:
        raise kopf.TemporaryError(f"applying owned objects failed: {error.status} {error.reason}", delay=5) from error
    if result.target_missing:
        run = RunOutcome(now=ctl.clock(), generation=subject.generation, current=_current(subject),
                         health=Health(target_missing=result.target_missing))  # fmt: skip
        await asyncio.to_thread(ctl.write_status, subject, spec, run)
        raise kopf.TemporaryError(f"target Deployment {result.target_missing} not found", delay=15)
    if result.changed:
        await asyncio.to_thread(
            ctl.kube.post_event, subject.ref, reason="Applied", message="; ".join(result.changed)[:1024]
        )


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def routedmodel_control(meta: kopf.Meta, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """The control loop of one RoutedModel: a run, then wait the live spec's period."""
    namespace, name = str(meta["namespace"]), str(meta["name"])
    ctl = controller()
    while not stopped:
        try:
            period = await asyncio.to_thread(ctl.run_once, namespace, name)
        except Exception:  # a failed run must not end the loop; the next period retries
            logger.exception("control run of %s/%s failed", namespace, name)
            period = ctl.settings.retry_delay_seconds
        await stopped.wait(period)


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A detached plain-dict copy of Kopf's live body."""
    import copy

    return copy.deepcopy(dict(body))


def _current(subject: Subject) -> Any:
    from thermostat.api.status import Settings

    return subject.previous.current if subject.previous and subject.previous.current else Settings()
