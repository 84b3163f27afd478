"""A second metrics source for when Prometheus fails: the RoutedModel's pods' ``/metrics``, read directly.

The caller lists the pods (``pod_targets`` turns pod objects into addresses) and calls ``scrape``
once per control period; ``read`` then answers each signal from the pods' own series, as the
Prometheus templates would: counter rates and histogram quantiles from the deltas between the
oldest scrape still inside the SLO window and the newest, gauges from the newest. With one scrape
there is no delta yet, so every rate is ``NoData`` (the law holds), never zero. A counter that went
down (a restarted pod) restarts from zero, as Prometheus' ``rate`` does. Queries overridden in the
spec and DCGM power cannot be evaluated here and are ``NoData`` naming why.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from thermostat.api.spec import LatencySlo, MetricsPreset, MetricsSpec, PowerSource
from thermostat.control.types import Signal
from thermostat.metrics.source import NoDataError, NotANumberError, Sample, Scope, SourceUnavailableError
from thermostat.metrics.templates import LATENCY_HISTOGRAMS, OVERRIDE_FIELDS, VLLM_LATENCY_HISTOGRAMS

Labels = tuple[tuple[str, str], ...]
Series = dict[tuple[str, Labels], float]  # (sample name, sorted labels) -> value, one pod's scrape
Fetch = Callable[[str, float], str]  # (url, timeout) -> exposition text; raises on failure
SCRAPE_THREADS = 8


@dataclass(frozen=True)
class PodTarget:
    """Where one pod serves its metrics."""

    pod: str
    url: str


@dataclass(frozen=True)
class Scrape:
    """Every pod's series at one time (pods that did not answer are absent)."""

    time: float
    pods: dict[str, Series]


@dataclass(frozen=True)
class Rate:
    """A counter's summed per-second rate; ``over`` divides it by another counter's (a ratio)."""

    series: str
    matchers: Labels = ()
    over: Rate | None = None


@dataclass(frozen=True)
class Gauge:
    series: str


_RUNTIME: dict[str, Rate | Gauge] = {
    Signal.REQUEST_RATE: Rate("thermostat_requests_total"),
    Signal.SERVED_RATE: Rate("thermostat_requests_total", (("code", "200"),)),
    Signal.SHED_RATE: Rate("thermostat_requests_total", (("code", "429"),)),
    Signal.TOKEN_RATE: Rate("thermostat_tokens_total", (("kind", "generated"),)),
    Signal.POWER: Gauge("thermostat_gpu_power_watts"),
    Signal.ENERGY: Rate("thermostat_gpu_energy_joules_total"),
    Signal.SHADOW_TOKENS: Rate("thermostat_shadow_tokens_total"),
    Signal.QUALITY: Rate("thermostat_shadow_agree_tokens_total", over=Rate("thermostat_shadow_tokens_total")),
    Signal.QUALITY_KL: Rate("thermostat_shadow_kl_nats_total", over=Rate("thermostat_shadow_tokens_total")),
    Signal.QUEUE_DEPTH: Gauge("thermostat_queue_depth"),
}
_VLLM: dict[str, Rate | Gauge] = {
    Signal.REQUEST_RATE: Rate("vllm:request_success_total"),
    Signal.SERVED_RATE: Rate("vllm:request_success_total"),
    Signal.TOKEN_RATE: Rate("vllm:generation_tokens_total"),
    Signal.QUEUE_DEPTH: Gauge("vllm:num_requests_waiting"),
}


def parse(text: str) -> Series:
    """One exposition's samples, keyed by sample name and labels (prometheus-client's parser)."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def _port(pod: dict[str, Any]) -> int | None:
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get("prometheus.io/port")
    if annotated and str(annotated).isdigit():
        return int(annotated)
    ports = [p for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []]
    named = [p for p in ports if p.get("name") in ("metrics", "http")] or ports
    return int(named[0]["containerPort"]) if named else None


def pod_targets(pods: Iterable[dict[str, Any]]) -> list[PodTarget]:
    """The running pods' metrics addresses: ``status.podIP``, the ``prometheus.io/port`` annotation or
    the container port named ``metrics``/``http``, and ``prometheus.io/path`` (default ``/metrics``)."""
    targets = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        ip, port = status.get("podIP"), _port(pod)
        if status.get("phase") != "Running" or not ip or port is None or meta.get("deletionTimestamp"):
            continue
        path = (meta.get("annotations") or {}).get("prometheus.io/path") or "/metrics"
        host = f"[{ip}]" if ":" in ip else ip
        targets.append(PodTarget(pod=meta.get("name", ip), url=f"http://{host}:{port}{path}"))
    return targets


def http_fetch(url: str, timeout_s: float) -> str:
    """GET one pod's exposition (the default ``Fetch``)."""
    response = requests.get(url, timeout=timeout_s)
    response.raise_for_status()
    return response.text


def _matching(series: Series, name: str, matchers: Labels) -> Iterable[tuple[Labels, float]]:
    wanted = set(matchers)
    for (sample, labels), value in series.items():
        if sample == name and wanted <= set(labels):
            yield labels, value


def _delta(old: Series, new: Series, name: str, matchers: Labels) -> float:
    """The increase of every matching child of a counter between two scrapes of one pod (reset: from 0)."""
    total = 0.0
    for labels, value in _matching(new, name, matchers):
        before = old.get((name, labels), 0.0)
        total += value if value < before else value - before
    return total


def histogram_quantile(quantile: float, buckets: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile`` over cumulative bucket counts keyed by upper bound ``le``."""
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]) or buckets[bounds[-1]] <= 0:
        return math.nan
    rank, previous_bound, previous_count = quantile * buckets[bounds[-1]], 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound  # the highest finite bound, as Prometheus answers
            if bound <= 0 or count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return bounds[-2] if len(bounds) > 1 else math.nan


@dataclass
class DirectMetrics:
    """A ``MetricsSource`` over the pods' own ``/metrics``; ``scrape`` before each period's reads."""

    slo: LatencySlo
    metrics: MetricsSpec
    fetch: Fetch = http_fetch
    timeout_s: float = 2.0
    history: deque[Scrape] = field(default_factory=lambda: deque(maxlen=64))

    def scrape(self, targets: list[PodTarget], *, now: float) -> int:
        """Read every pod once; returns how many answered. None answering raises ``SourceUnavailable``."""
        pods: dict[str, Series] = {}
        failures = []
        # In parallel: a period waits one timeout for unreachable pods, not one per pod.
        with ThreadPoolExecutor(max_workers=max(1, min(SCRAPE_THREADS, len(targets)))) as pool:
            texts = [(t, pool.submit(self.fetch, t.url, self.timeout_s)) for t in targets]
            for target, text in texts:
                try:
                    pods[target.pod] = parse(text.result())
                except (requests.RequestException, ValueError, OSError) as error:
                    failures.append(f"{target.pod} ({type(error).__name__})")
        if targets and not pods:
            raise SourceUnavailableError(f"direct scrape: no pod answered: {', '.join(failures)[:200]}")
        self.history.append(Scrape(time=now, pods=pods))
        return len(pods)

    def _pair(self, now: float) -> tuple[Scrape, Scrape]:
        if not self.history:
            raise NoDataError("direct scrape: no pod has been scraped yet")
        newest = self.history[-1]
        inside = [s for s in self.history if s.time >= now - self.slo.window_seconds and s is not newest]
        older = [s for s in self.history if s is not newest]
        base = inside[0] if inside else (older[-1] if older else None)
        if base is None or newest.time - base.time <= 0:
            raise NoDataError("direct scrape: rates need two scrapes; the next period has them")
        return base, newest

    def _rate(self, rate: Rate, base: Scrape, newest: Scrape) -> float:
        shared = [pod for pod in newest.pods if pod in base.pods]
        if not any(any(True for _ in _matching(newest.pods[p], rate.series, ())) for p in shared):
            raise NoDataError(f"direct scrape: no pod exports {rate.series}")
        total = math.fsum(_delta(base.pods[p], newest.pods[p], rate.series, rate.matchers) for p in shared)
        return total / (newest.time - base.time)

    def read(self, signal: Signal | str, scope: Scope, *, now: float) -> Sample:
        """One signal from the last scrapes (``scope`` is implied: the targets were the RoutedModel's pods)."""
        override = OVERRIDE_FIELDS.get(signal)
        if override and getattr(self.metrics.queries, override):
            raise NoDataError(f"spec.metrics.queries overrides {signal}: its PromQL needs Prometheus")
        if signal == Signal.LATENCY:
            return self._latency(now)
        vllm = self.metrics.preset == MetricsPreset.VLLM
        if signal in (Signal.POWER, Signal.ENERGY) and self.metrics.effective_power_source == PowerSource.DCGM:
            raise NoDataError(f"direct scrape: {signal} comes from dcgm-exporter, which needs Prometheus")
        if vllm and signal == Signal.SHED_RATE:
            return Sample(0.0, age_s=0.0)  # vLLM queues rather than refusing (templates.VLLM_TEMPLATES)
        spec = (_VLLM if vllm else _RUNTIME).get(signal)
        if spec is None:
            raise NoDataError(f"direct scrape has no series for {signal}")
        base, newest = self._pair(now) if isinstance(spec, Rate) else (self.history[-1], self.history[-1])
        age = max(0.0, now - newest.time)
        if isinstance(spec, Gauge):
            return self._gauge(spec, signal, newest, age)
        value = self._rate(spec, base, newest)
        if spec.over is not None:
            value = value / self._rate(spec.over, base, newest) if self._rate(spec.over, base, newest) else math.nan
        if not math.isfinite(value):
            raise NotANumberError(f"direct scrape: {signal} is {value} (no events in the window)")
        return Sample(value, age_s=age)

    def _gauge(self, gauge: Gauge, signal: str, newest: Scrape, age: float) -> Sample:
        found = [(labels, v) for series in newest.pods.values() for labels, v in _matching(series, gauge.series, ())]
        if not found:
            raise NoDataError(f"direct scrape: no pod exports {gauge.series}")
        source = None
        if signal == Signal.POWER:
            sources = {dict(labels).get("source") for labels, _ in found}
            source = "estimate" if "estimate" in sources else "nvml"
        return Sample(math.fsum(v for _, v in found), age_s=age, power_source=source)

    def _latency(self, now: float) -> Sample:
        histograms = VLLM_LATENCY_HISTOGRAMS if self.metrics.preset == MetricsPreset.VLLM else LATENCY_HISTOGRAMS
        name = histograms[self.slo.metric] + "_bucket"
        base, newest = self._pair(now)
        buckets: dict[float, float] = {}
        for pod, series in newest.pods.items():
            old = base.pods.get(pod)
            if old is None:
                continue
            for labels, value in _matching(series, name, ()):
                le = float(dict(labels)["le"])
                before = old.get((name, labels), 0.0)
                buckets[le] = buckets.get(le, 0.0) + (value if value < before else value - before)
        if not buckets:
            raise NoDataError(f"direct scrape: no pod exports {name}")
        value = histogram_quantile(self.slo.quantile, buckets)
        if not math.isfinite(value):
            raise NotANumberError(f"direct scrape: no request finished in the window ({name})")
        return Sample(value, age_s=max(0.0, now - newest.time))
