"""Thin Kopf handlers (``kopf run -m thermostat.handlers``): wire Kopf's events to ``thermostat.reconcile``.

- startup: settings, JSON logs, the operator's /metrics, annotation-based progress storage (the
  status is a structural schema owned by ``thermostat.api``; Kopf must not write ``status.kopf``),
  and the process-wide ``Context`` in the operator memo;
- create/update/resume: ``ensure_owned`` (ownerReferences on what it created make deletion cascade);
- delete, for a RoutedModel with ``targetRef`` only (so only these get Kopf's finalizer): ``release``
  gives the user's Deployment and ConfigMap back as they were;
- one daemon per RoutedModel: ``control_run`` every ``spec.behavior.periodSeconds``.
Per-RoutedModel state lives in Kopf's per-object ``memo``, born and dying with the object.
Handlers never return values: Kopf would store them in status.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import socket
from typing import Any

import kopf

from thermostat.api.resource import GROUP, PLURAL, VERSION
from thermostat.kube import Kube, load_api_client
from thermostat.profiles import load_profile
from thermostat.reconcile import Context, ResourceState, control_run, drives_users_objects, ensure_owned, release
from thermostat.settings import LogFormat, OperatorSettings
from thermostat.telemetry import configure_logging, serve_metrics

logger = logging.getLogger(__name__)
ANNOTATION_PREFIX = "thermostat.dev"
USER_AGENT = "thermostat-operator"


@kopf.on.startup()
def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure Kopf and build the process's reconcile context."""
    ours = OperatorSettings()
    configure_logging(json_logs=ours.log_format == LogFormat.JSON, level=ours.log_level)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    settings.posting.level = logging.WARNING  # our own Events say what happened; Kopf's only on trouble
    settings.watching.server_timeout = 60
    settings.networking.request_timeout = 30
    serve_metrics(ours.metrics_port, ours.metrics_host)
    settings.peering.lifetime = ours.peering_lifetime_seconds
    identity = ours.identity or f"{socket.gethostname()}-{os.getpid()}"
    kube = Kube(load_api_client(ours.kubeconfig, user_agent=f"{USER_AGENT} ({identity})"))
    memo.context = Context(kube, ours, load_profile(ours.profile))
    logger.info("thermostat operator started (prometheus %s)", ours.prometheus_url or "per RoutedModel")


def resource_state(memo: kopf.Memo) -> ResourceState:
    """This RoutedModel's state (the operator memo holds none, so each object's copy gets its own)."""
    if "state" not in memo:
        memo.state = ResourceState()
    state: ResourceState = memo.state
    return state


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(GROUP, VERSION, PLURAL)
async def routedmodel_apply(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """Render and apply the owned objects; what stops it is reported in status, then retried."""
    context: Context = memo.context
    problem = await asyncio.to_thread(ensure_owned, context, resource_state(memo), copy.deepcopy(dict(body)))
    if problem:
        raise kopf.TemporaryError(problem, delay=context.settings.retry_delay_seconds * min(retry + 1, 6))


@kopf.on.delete(GROUP, VERSION, PLURAL, when=lambda spec, **_: drives_users_objects(dict(spec)))
async def routedmodel_release(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Give the user's objects back (restore the keys written, drop the marks); Kopf retries on error."""
    context: Context = memo.context
    await asyncio.to_thread(release, context, copy.deepcopy(dict(body)))


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def routedmodel_control(meta: kopf.Meta, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """The control loop of one RoutedModel: a run, then wait the live spec's period."""
    namespace, name = str(meta["namespace"]), str(meta["name"])
    context: Context = memo.context
    state = resource_state(memo)
    while not stopped:
        try:
            period = await asyncio.to_thread(control_run, context, state, namespace, name)
        except Exception:  # a failed run must not end the loop; the next period retries
            logger.exception("control run of %s/%s failed", namespace, name)
            period = context.settings.retry_delay_seconds
        await stopped.wait(period)
