"""The run's time series and decision log, sampled once a second for the live view and the report.

Each sample holds what a person watching the loop wants side by side: the driver's request outcomes,
the latency quantile, power, routing temperature and quality exactly as the operator reads them
(the operator's own PromQL templates against the same Prometheus), the Deployment's replicas, and
the RoutedModel's status. Every new decision in the status history is logged once, with the
observation it was made on, so decisions are counted over the whole run although the status keeps
only the last few.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from thermostat.api.spec import RoutedModelSpec
from thermostat.control.types import Signal
from thermostat.metrics.source import Scope
from thermostat.metrics.templates import render, template_for
from thermostat_stack.kubeapi import KubeApi, KubeApiError
from thermostat_stack.loaddriver import LoadDriver

SAMPLED_SIGNALS = {
    "latency_s": Signal.LATENCY,
    "power_w": Signal.POWER,
    "request_rate": Signal.REQUEST_RATE,
    "quality_agreement": Signal.QUALITY,
    "quality_kl_nats": Signal.QUALITY_KL,
    "within_slo_ratio": Signal.WITHIN_SLO,
}
TEMPERATURE_QUERY = "avg(thermostat_routing_temperature{{{selector}}})"
# Shadow agreement since the pods started: steadier than the SLO-window ratio when shadows are few.
CUMULATIVE_AGREEMENT_QUERY = (
    "sum(thermostat_shadow_agree_tokens_total{{{selector}}}) / sum(thermostat_shadow_tokens_total{{{selector}}})"
)


@dataclass
class Sample:
    """One second of the run (times in seconds from the start of the load)."""

    t_s: float
    sent: int
    ok: int
    rejected: int
    failed: int
    in_flight: int
    latency_s: float | None = None
    power_w: float | None = None
    power_source: str | None = None
    request_rate: float | None = None
    quality_agreement: float | None = None
    quality_kl_nats: float | None = None  # shadow mean KL per token over the SLO window
    within_slo_ratio: float | None = None  # share of requests within the SLO over the window (the SLO bucket)
    quality_agreement_cumulative: float | None = None
    pod_temperature: float | None = None
    temperature: float | None = None
    replicas: int | None = None
    ready_replicas: int | None = None


@dataclass
class DecisionLog:
    """One control run, read from status: what the law recommended, on which observation, and why.

    The status history keeps only changes of advice; every control run, changed or not, writes a new
    ``status.observation``, so one entry is logged per observation time. ``reason`` is the history's
    reason when this run changed the advice, and empty otherwise (``changed`` False).
    """

    t_s: float
    routing_temperature: float
    replicas: int
    reason: str
    changed: bool
    applied: bool
    observed_latency_s: float | None
    observed_request_rate: float | None
    operating_temperature: float | None = None  # status.quality: the steady operating point
    quality_loss_percent_mean: float | None = None  # status.quality: the law's time average
    ready_replicas: int | None = None  # the Deployment's, when this decision was read


@dataclass
class Recorder:
    """Samples the run; see the module docstring."""

    api: KubeApi
    prometheus_url: str
    namespace: str
    name: str
    spec: RoutedModelSpec
    driver: LoadDriver
    samples: list[Sample] = field(default_factory=list)
    decisions: list[DecisionLog] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    load_start_wall: float | None = None
    _seen: set[str] = field(default_factory=set)

    def t_of(self, wall: float) -> float:
        return wall - self.load_start_wall if self.load_start_wall is not None else 0.0

    async def run(self, interval_s: float = 1.0) -> None:
        """Sample every ``interval_s`` until cancelled."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while True:
                started = time.monotonic()
                await self.sample(session)
                await asyncio.sleep(max(interval_s - (time.monotonic() - started), 0.05))

    async def sample(self, session: aiohttp.ClientSession) -> Sample:
        stats = self.driver.stats
        sample = Sample(
            self.t_of(time.time()),
            stats.sent,
            stats.ok,
            stats.rejected,
            stats.failed,
            self.driver.pool.total_in_flight(),
        )
        await self._read_prometheus(session, sample)
        await self._read_kubernetes(sample)
        self.samples.append(sample)
        return sample

    async def _read_prometheus(self, session: aiohttp.ClientSession, sample: Sample) -> None:
        scope = Scope(self.namespace, self.name)
        for attribute, signal in SAMPLED_SIGNALS.items():
            promql = render(template_for(signal, self.spec.slo, self.spec.metrics).promql, scope, self.spec.slo)
            value, labels = await _query(session, self.prometheus_url, promql)
            setattr(sample, attribute, value)
            if signal == Signal.POWER and labels.get("source"):
                sample.power_source = labels["source"]
        selector = f'namespace="{self.namespace}",routedmodel="{self.name}"'
        sample.pod_temperature, _ = await _query(
            session, self.prometheus_url, TEMPERATURE_QUERY.format(selector=selector)
        )
        sample.quality_agreement_cumulative, _ = await _query(
            session, self.prometheus_url, CUMULATIVE_AGREEMENT_QUERY.format(selector=selector)
        )

    async def _read_kubernetes(self, sample: Sample) -> None:
        base = f"/apis/thermostat.dev/v1alpha1/namespaces/{self.namespace}/routedmodels/{self.name}"
        try:
            routedmodel = await self.api.get(base)
            deployment = await self.api.get(f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.name}")
        except (KubeApiError, aiohttp.ClientError, TimeoutError):
            return
        self.status = routedmodel.get("status") or {}
        current = self.status.get("current") or {}
        sample.temperature = current.get("routingTemperature")
        sample.replicas = (deployment.get("spec") or {}).get("replicas")
        sample.ready_replicas = (deployment.get("status") or {}).get("readyReplicas", 0)
        self._log_decisions(sample.ready_replicas)

    def _log_decisions(self, ready_replicas: int | None) -> None:
        observation = self.status.get("observation") or {}
        quality = self.status.get("quality") or {}
        recommended = self.status.get("recommended") or {}
        stamp = observation.get("time")
        if not stamp or stamp in self._seen or recommended.get("routingTemperature") is None:
            return
        self._seen.add(stamp)
        history = {record.get("time"): record for record in self.status.get("decisions") or []}
        record = history.get(stamp)
        self.decisions.append(
            DecisionLog(
                t_s=self.t_of(_epoch(stamp)),
                routing_temperature=float(recommended["routingTemperature"]),
                replicas=int(recommended.get("replicas") or 0),
                reason=record.get("reason", "") if record else "",
                changed=record is not None,
                applied=bool(record.get("applied")) if record else False,
                observed_latency_s=observation.get("latencySeconds"),
                observed_request_rate=observation.get("requestRate"),
                operating_temperature=quality.get("operatingTemperature"),
                quality_loss_percent_mean=quality.get("lossPercentMean"),
                ready_replicas=ready_replicas,
            )
        )

    def as_json(self) -> dict[str, Any]:
        return {"samples": [asdict(s) for s in self.samples], "decisions": [asdict(d) for d in self.decisions]}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def _query(session: aiohttp.ClientSession, url: str, promql: str) -> tuple[float | None, dict[str, str]]:
    """An instant query's value (several series summed); None when empty, NaN or unreachable."""
    try:
        async with session.get(f"{url}/api/v1/query", params={"query": promql}) as response:
            body = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None, {}
    result = (body.get("data") or {}).get("result") or []
    if not result:
        return None, {}
    value = sum(float(item["value"][1]) for item in result)
    return (None if math.isnan(value) or math.isinf(value) else value), dict(result[0].get("metric") or {})
