"""A stock vLLM Deployment under load, as Prometheus would scrape it: replayed fixtures, queue-model values.

``VllmPlant`` stands for the whole Deployment: one pod's ``/metrics`` (fixtures/vllm.prom, summed
over its replicas as ``sum()`` would) and a dcgm-exporter (fixtures/dcgm-exporter.prom) with one GPU
per replica, both labelled with the published pod. Its truth is a fluid queue the law does not
model: ``n`` ready replicas (read from the Deployment in the API, so the operator's scaling is what
changes it) each serve ``per_replica_rps``; a request alone takes ``lone_s``; the mean latency is
``lone_s / √(1 − ρ)`` plus the backlog's wait, spread as a gamma of shape 8 (p95 ≈ 1.6 × mean);
arrivals above capacity queue (vLLM does not refuse). GPU power is 90 W idle plus 500 W × utilisation.

``kill`` is the pod's vLLM process SIGKILLed: its ``/metrics`` stops answering, what it held is lost,
and arrivals meanwhile are refused (``lost``); ``restart`` is the process back on the same port with
its counters at zero, and for its first ``lone_s`` (or as long as asked: a long first generation)
nothing completes yet (requests run, none waits).
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections.abc import Iterable
from typing import Any

from exposition import ReplayExporter, Sample, load_fixture

IDLE_W, DYNAMIC_W = 90.0, 500.0
STEP_S = 0.1


def bucket_bounds(fixture: str, histogram: str) -> list[float]:
    """The ``le`` bounds of a fixture histogram (without +Inf)."""
    family = next(f for f in load_fixture(fixture) if f.header[0].split()[2] == histogram)
    bounds = {s.labels["le"] for s in family.samples if s.name.endswith("_bucket")}
    return sorted(float(b) for b in bounds if b != "+Inf")


class Histogram:
    """Cumulative bucket counts over a fixture's bounds."""

    def __init__(self, bounds: list[float]) -> None:
        self.bounds, self.counts, self.total, self.sum = bounds, [0] * len(bounds), 0, 0.0

    def observe(self, value: float) -> None:
        first = bisect.bisect_left(self.bounds, value)
        for i in range(first, len(self.bounds)):
            self.counts[i] += 1
        self.total, self.sum = self.total + 1, self.sum + value

    def value(self, sample: Sample) -> float:
        if sample.name.endswith("_sum"):
            return self.sum
        le = sample.labels.get("le")
        if le is None or le == "+Inf":
            return float(self.total)
        return float(self.counts[self.bounds.index(float(le))])


class VllmPlant:
    """The Deployment's series, stepped every ``STEP_S`` by a thread; ``set_rate`` moves the load."""

    def __init__(self, ready_replicas: Any, *, pod: str, per_replica_rps: float, lone_s: float) -> None:
        self.ready_replicas = ready_replicas  # () -> int, from the API
        self.pod, self.mu, self.lone_s = pod, per_replica_rps, lone_s
        self.rate, self.backlog, self.due, self.tokens = 0.0, 0.0, 0.0, 200
        self.replicas = 1
        self._fresh_process()
        self.dead, self.cold_s, self.lost = False, 0.0, 0.0
        self.energy_mj: list[float] = []
        self.utilisation = 0.0
        self._rng, self._lock, self._stop = random.Random(7), threading.Lock(), threading.Event()
        self.vllm = ReplayExporter("vllm.prom", self.replay_vllm)
        self.dcgm = ReplayExporter("dcgm-exporter.prom", self.replay_dcgm)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _fresh_process(self) -> None:
        self.counters = {"stop": 0.0, "generation": 0.0, "prompt": 0.0}
        self.e2e = Histogram(bucket_bounds("vllm.prom", "vllm:e2e_request_latency_seconds"))
        self.ttft = Histogram(bucket_bounds("vllm.prom", "vllm:time_to_first_token_seconds"))
        self.tpot = Histogram(bucket_bounds("vllm.prom", "vllm:time_per_output_token_seconds"))

    def kill(self) -> None:
        """SIGKILL the pod's vLLM: no /metrics, in-flight requests lost, arrivals refused until ``restart``."""
        with self._lock:
            self.dead, self.lost, self.backlog, self.due = True, self.lost + self.backlog, 0.0, 0.0
        self.vllm.close()

    def restart(self, first_done_s: float | None = None) -> None:
        """The process back on the same port, its counters at zero; nothing finishes for ``first_done_s``."""
        with self._lock:
            self._fresh_process()
            self.dead, self.cold_s = False, self.lone_s if first_done_s is None else first_done_s
        self.vllm = ReplayExporter("vllm.prom", self.replay_vllm, port=self.vllm.port)

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self.rate = rate

    def _run(self) -> None:
        polled = 0.0
        while not self._stop.wait(STEP_S):
            polled += STEP_S
            if polled >= 0.5:  # the API is asked twice a second, not ten times
                polled, self.replicas = 0.0, max(1, int(self.ready_replicas()))
            with self._lock:
                self._step(STEP_S)

    def _step(self, dt: float) -> None:
        if self.dead:
            self.lost += self.rate * dt
            self.utilisation = 0.0
        elif self.cold_s > 0:  # the restarted process: requests run, none has finished yet
            self.cold_s -= dt
            self.backlog += self.rate * dt
        else:
            self._serve(dt)
        self.energy_mj += [0.0] * (self.replicas - len(self.energy_mj))
        for gpu in range(self.replicas):
            self.energy_mj[gpu] += self.power_w() * dt * 1000.0

    def _serve(self, dt: float) -> None:
        capacity = self.replicas * self.mu
        offered = self.rate * dt + self.backlog
        served = min(offered, capacity * dt)
        self.backlog = offered - served
        rho = min(self.rate / capacity, 0.95)
        mean_s = self.lone_s / math.sqrt(1.0 - rho) + self.backlog / capacity
        self.due += served
        while self.due >= 1.0:
            self.due -= 1.0
            latency = mean_s * self._rng.gammavariate(8.0, 1.0 / 8.0)
            self.e2e.observe(latency)
            self.ttft.observe(latency * 0.1)
            self.tpot.observe(latency * 0.9 / self.tokens)
            self.counters["stop"] += 1
            self.counters["generation"] += self.tokens
            self.counters["prompt"] += 100
        self.utilisation = min(1.0, served / dt / capacity)

    def power_w(self) -> float:
        return IDLE_W + DYNAMIC_W * self.utilisation

    def replay_vllm(self, sample: Sample) -> Iterable[tuple[dict[str, str], float]]:
        with self._lock:
            yield sample.labels, self._vllm_value(sample)

    def _vllm_value(self, sample: Sample) -> float:
        name = sample.name
        if name.startswith("vllm:e2e_request_latency_seconds"):
            return self.e2e.value(sample)
        if name.startswith("vllm:time_to_first_token_seconds"):
            return self.ttft.value(sample)
        if name.startswith("vllm:time_per_output_token_seconds"):
            return self.tpot.value(sample)
        if name == "vllm:request_success_total":
            return self.counters["stop"] if sample.labels.get("finished_reason") == "stop" else 0.0
        if name == "vllm:num_requests_waiting":
            return 0.0 if self.cold_s > 0 else math.floor(self.backlog)
        if name == "vllm:num_requests_running":
            if self.cold_s > 0:
                return math.floor(self.backlog)
            return min(self.rate, self.replicas * self.mu) * self.lone_s
        return {"vllm:generation_tokens_total": self.counters["generation"],
                "vllm:prompt_tokens_total": self.counters["prompt"]}.get(name, sample.value)  # fmt: skip

    def replay_dcgm(self, sample: Sample) -> Iterable[tuple[dict[str, str], float]]:
        with self._lock:
            for gpu, energy in enumerate(self.energy_mj[: self.replicas]):
                labels = {**sample.labels, "gpu": str(gpu), "UUID": f"GPU-{gpu:08d}", "pod": self.pod,
                          "namespace": "it"}  # fmt: skip
                yield labels, self.power_w() if sample.name == "DCGM_FI_DEV_POWER_USAGE" else energy

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.vllm.close()
        self.dcgm.close()
