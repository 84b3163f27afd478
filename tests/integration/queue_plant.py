"""A queueing plant for the closed-loop test: runtime series whose latency follows what the operator set.

Requests arrive (Poisson, seeded) at the rate the test offers and wait in one FIFO queue in front of
the *ready* replicas the Deployment reports; each replica runs up to ``max_batch`` requests at once,
and a request's service time is ``base_s`` × the routing's time fraction ``0.5 + 0.5 T`` at the
temperature in the routing ConfigMap × a batching slowdown ``1 + slowdown × (batch − 1)``. Replicas
and temperature are read back from the API server (what the operator wrote and the Deployment
controller made ready), never set by the test. The truth is not the law's model: batch-1-like
service with a different batching curve, routing savings of another shape, and a cold start the
emulated Deployment controller imposes. Completions feed a ``SeriesExporter`` as a runtime's would
(latency histogram, request and token counters, queue depth, estimated power and energy, and shadow
quality with KL growing as T falls, for the share of requests the pod template's ``--shadow-fraction``
says); the plant keeps its own record of every completion so the test
can judge the SLO from the ground truth as well as from Prometheus.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from integration_support import NAME, NAMESPACE, Cluster, SeriesExporter

TICK_S = 0.05
READ_BACK_S = 0.5  # how often the plant reads replicas and temperature from the API server


@dataclass
class Truth:
    """The plant's physics (not the law's response model)."""

    base_s: float = 1.0  # one request alone at T = 1
    max_batch: int = 4
    slowdown: float = 0.35  # per extra request in a replica's batch
    tokens: int = 64  # generated per request
    kl_at_floor: float = 0.12  # nats per token at T -> 0, quadratic in (1 - T): near the profile's at 0.7

    def service_s(self, temperature: float, batch: int) -> float:
        return self.base_s * (0.5 + 0.5 * temperature) * (1.0 + self.slowdown * (batch - 1))

    def kl_nats(self, temperature: float) -> float:
        return self.kl_at_floor * (1.0 - temperature) ** 2


def _shadow_fraction(deployment: dict[str, Any]) -> float:
    """``--shadow-fraction`` of the pod template's runtime command (0 when absent, the runtime's default)."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    command = [*(containers[0].get("command") or []), *(containers[0].get("args") or [])] if containers else []
    if "--shadow-fraction" in command[:-1]:
        return float(command[command.index("--shadow-fraction") + 1])
    return 0.0


@dataclass
class Replica:
    running: list[float] = field(default_factory=list)  # finish times of the requests in its batch


class QueuePlant(threading.Thread):
    """The plant, run in real time in its own thread (see the module docstring)."""

    def __init__(self, exporter: SeriesExporter, cluster: Cluster, truth: Truth | None = None, seed: int = 7) -> None:
        super().__init__(daemon=True)
        self.exporter, self.cluster, self.truth = exporter, cluster, truth or Truth()
        self.rate = 0.0
        self.random = random.Random(seed)
        self.queue: list[float] = []  # arrival times, FIFO
        self.replicas: list[Replica] = []
        self.finishing: list[tuple[float, float, float]] = []  # heap of (finish, arrival, temperature)
        self.completions: list[tuple[float, float]] = []  # (finish time, latency), the ground truth
        self.temperature, self.ready = 1.0, 0
        self.shadow_fraction = 0.0  # the pods' --shadow-fraction, as the operator rendered it
        self.read_error: str | None = None
        self._lock = threading.Lock()
        self._next_arrival: float | None = None
        self._stop = threading.Event()

    def offer(self, rate: float) -> None:
        with self._lock:
            self.rate = rate
            self._next_arrival = None  # drawn afresh at the new rate

    def stop(self) -> None:
        self._stop.set()

    def quantile_since(self, since: float, quantile: float = 0.95) -> tuple[float | None, int]:
        """The plant's own latency quantile over completions after ``since`` (monotonic s), and their count."""
        with self._lock:
            latencies = sorted(lat for finish, lat in self.completions if finish >= since)
        if not latencies:
            return None, 0
        return latencies[min(len(latencies) - 1, int(quantile * len(latencies)))], len(latencies)

    def run(self) -> None:
        next_read = time.monotonic()
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            if now >= next_read:
                self._read_back()
                next_read = now + READ_BACK_S
            self._arrive(now)
            self._finish(now)
            self._start(now)
            self._export_gauges()

    def _arrive(self, now: float) -> None:
        with self._lock:
            if self.rate <= 0:
                return
            if self._next_arrival is None:
                self._next_arrival = now + self.random.expovariate(self.rate)
            while self._next_arrival <= now:
                self.queue.append(self._next_arrival)
                self._next_arrival += self.random.expovariate(self.rate)

    def _read_back(self) -> None:
        """Replicas ready and the routing temperature, as the operator and the Deployment controller left them."""
        try:
            deployment: dict[str, Any] = self.cluster.kube.read("Deployment", NAMESPACE, NAME) or {}
            text = self.cluster.temperature()
        except Exception as error:  # the API server may be slow under load: keep the last values
            self.read_error = str(error)
            return
        self.ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
        self.shadow_fraction = _shadow_fraction(deployment)
        if text is not None:
            self.temperature = float(text)
        while len(self.replicas) < self.ready:
            self.replicas.append(Replica())
        # A removed replica finishes what it runs (the drain) and takes nothing new.
        del self.replicas[self.ready :]

    def _start(self, now: float) -> None:
        for replica in self.replicas:
            replica.running = [f for f in replica.running if f > now]
            while self.queue and len(replica.running) < self.truth.max_batch:
                arrival = self.queue.pop(0)
                finish = now + self.truth.service_s(self.temperature, len(replica.running) + 1)
                replica.running.append(finish)
                heapq.heappush(self.finishing, (finish, arrival, self.temperature))

    def _finish(self, now: float) -> None:
        truth, exporter = self.truth, self.exporter
        while self.finishing and self.finishing[0][0] <= now:
            finish, arrival, temperature = heapq.heappop(self.finishing)
            latency = finish - arrival
            exporter.request_duration.observe(latency)
            exporter.requests.labels(code="200").inc()
            exporter.tokens.labels(kind="generated").inc(truth.tokens)
            if self.random.random() < self.shadow_fraction:
                exporter.shadow.inc(truth.tokens)
                exporter.shadow_agree.inc(truth.tokens * (1.0 - 4.0 * truth.kl_nats(temperature)))
                exporter.shadow_kl.inc(truth.tokens * truth.kl_nats(temperature))
            with self._lock:
                self.completions.append((finish, latency))

    def _export_gauges(self) -> None:
        busy = sum(len(r.running) for r in self.replicas)
        self.exporter.queue_depth.set(len(self.queue))
        watts = 90.0 * max(self.ready, 1) + 150.0 * busy * (0.5 + 0.5 * self.temperature)
        self.exporter.power.labels(gpu="0", source="estimate").set(watts)
        self.exporter.energy.labels(gpu="0", source="estimate").inc(watts * TICK_S)
