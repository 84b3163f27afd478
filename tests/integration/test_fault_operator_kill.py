"""Fault (issue 17 item 3): the operator SIGKILLed mid-burst and restarted at once, as the kubelet would.

Real parts: the operator process, the emulated API server, a real Prometheus scraping the load
driver's runtime series. The kill lands while the law is still acting on a burst (the SLO missed, the
first actuation done), so no shutdown handler runs and nothing is settled. The restarted process must
resume from the RoutedModel's status: no scale-down and no knob moved back towards "idle" (a warmer
temperature or fewer replicas) while the burst lasts. Prints its figures; the operator is not on the
request path, so requests sent/ok/lost do not apply to this fault.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from integration_support import Cluster, LoadDriver, OperatorProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

SPEC: dict[str, Any] = {
    "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}},
    "slo": {"targetSeconds": 10, "windowSeconds": 15},
    "replicas": {"min": 1, "max": 3},
    "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10},
    "quality": {"minRoutingTemperature": 0.3},
}


class KnobRecorder(threading.Thread):
    """Samples (time, replicas, temperature) of the Deployment and ConfigMap every 0.2 s."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster, self.samples = cluster, list[tuple[float, int, float]]()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.2):
            replicas, temperature = self.cluster.replicas(), self.cluster.temperature()
            if replicas is not None and temperature is not None:
                self.samples.append((time.monotonic(), replicas, float(temperature)))

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)

    def backwards(self, since: float) -> tuple[int, int]:
        """(scale-downs, warmer temperatures) among the samples taken after ``since``."""
        later = [s for s in self.samples if s[0] >= since]
        downs = sum(1 for a, b in itertools.pairwise(later) if b[1] < a[1])
        warmer = sum(1 for a, b in itertools.pairwise(later) if b[2] > a[2])
        return downs, warmer


def test_the_operator_sigkilled_mid_burst_resumes_from_status_without_a_spurious_actuation(
    cluster: Cluster, operator: OperatorProcess, load: LoadDriver
) -> None:
    cluster.create_routedmodel(SPEC)
    load.set(rate=0.5, latency_s=4.0)
    wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=60, what="metrics")
    load.set(rate=6.0, latency_s=30.0)  # the burst: p95 three times the SLO, and it lasts to the end
    wait_until(lambda: float(cluster.temperature() or 1) < 1.0, timeout_s=60, what="the first actuation")
    recorder = KnobRecorder(cluster)
    recorder.start()
    observed_at = cluster.status()["observation"]["time"]
    killed_at = time.monotonic()
    operator.kill_and_restart()
    wait_until(lambda: cluster.status()["observation"]["time"] > observed_at, timeout_s=60, what="a new observation",
               process=operator.process)  # fmt: skip
    recovered_s = time.monotonic() - killed_at
    # The restarted operator under the burst it came back into: a dozen control periods.
    wait_until(lambda: recorder.samples and recorder.samples[-1][0] > killed_at + recovered_s + 12,
               timeout_s=60, what="twelve periods of the restarted operator")  # fmt: skip
    recorder.stop()
    downs, warmer = recorder.backwards(killed_at)
    first, last = recorder.samples[0], recorder.samples[-1]
    print(f"operator SIGKILL mid-burst: scale-downs {downs}, spurious actuations (warmer) {warmer}, time to recover "
          f"{recovered_s:.1f} s, knobs {first[1:]} -> {last[1:]}, requests n/a (not on the path)")  # fmt: skip
    assert downs == 0, recorder.samples
    assert warmer == 0, recorder.samples
    assert last[1] >= first[1]
    assert last[2] <= first[2]
