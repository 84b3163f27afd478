"""Helpers shared by the integration tests (and reusable by other suites): exporters of the runtime's
metric contract (DESIGN §3) set by the test, a load driver, the emulated API server and the operator
as child processes of this tree, polling reads of the emulated cluster.

pytest puts this folder on ``sys.path`` (rootdir-relative imports, no ``__init__.py``), so tests and
conftest import it as ``integration_support``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from thermostat.kube import Kube, load_api_client
from thermostat.run import spawn_operator
from thermostat_runtime.metrics import with_boundary
from thermostat_stack.promserver import free_port
from waiting import wait_until  # noqa: F401 - re-exported: the scenarios import it from here

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60)
TPOT_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1)


class SeriesExporter:
    """The runtime's /metrics series (names and labels of DESIGN §3), set by the test, on a free port.

    ``slo_target_seconds`` is the bucket boundary a runtime adds from its routing ConfigMap at start.
    """

    def __init__(self, slo_target_seconds: float | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        buckets = with_boundary(LATENCY_BUCKETS, slo_target_seconds)
        self.request_duration = Histogram(
            "thermostat_request_duration_seconds", "Request latency", buckets=buckets, registry=r
        )
        self.ttft = Histogram("thermostat_time_to_first_token_seconds", "TTFT", buckets=LATENCY_BUCKETS, registry=r)
        self.tpot = Histogram("thermostat_time_per_output_token_seconds", "TPOT", buckets=TPOT_BUCKETS, registry=r)
        self.requests = Counter("thermostat_requests", "Requests", ["code"], registry=r)
        self.tokens = Counter("thermostat_tokens", "Tokens", ["kind"], registry=r)
        self.queue_depth = Gauge("thermostat_queue_depth", "Queued requests", registry=r)
        self.power = Gauge("thermostat_gpu_power_watts", "GPU power", ["gpu", "source"], registry=r)
        self.energy = Counter("thermostat_gpu_energy_joules", "GPU energy", ["gpu", "source"], registry=r)
        self.shadow = Counter("thermostat_shadow_tokens", "Shadow tokens", registry=r)
        self.shadow_agree = Counter("thermostat_shadow_agree_tokens", "Agreeing shadow tokens", registry=r)
        self.shadow_kl = Counter("thermostat_shadow_kl_nats", "Shadow KL, nats", registry=r)
        self.shadow_kl_sq = Counter("thermostat_shadow_kl_sq_nats", "Shadow squared KL, nats^2", registry=r)
        # Children exist from the start, at zero, as a runtime's do: the first rate is of real traffic.
        self.requests.labels(code="200")
        self.requests.labels(code="429")
        self.tokens.labels(kind="generated")
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=r)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


REPO = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process running this tree's packages (not an installed checkout)."""
    tree = [str(REPO / d) for d in ("operator", "runtime", "tools")]
    path = os.pathsep.join([*tree, os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep), **extra}


@dataclass
class EmulatedApi:
    """A running ``thermostat apiserver`` process."""

    kubeconfig: Path
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    audit: Any = None  # rbac_support.Audit: the request log, each request with its identity


def wait_for_kubeconfig(path: Path, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"thermostat apiserver exited: {log.read_text(errors='replace')[-2000:]}")
        if path.exists():
            config = yaml.safe_load(path.read_text()) or {}
            clusters = config.get("clusters") or []
            if clusters:
                url = str(clusters[0]["cluster"]["server"])
                with urllib.request.urlopen(f"{url}/version", timeout=2):
                    return url
        time.sleep(0.1)
    raise TimeoutError(
        f"thermostat apiserver wrote no kubeconfig in {timeout_s:.0f}s: {log.read_text(errors='replace')[-2000:]}"
    )


NAMESPACE, NAME = "it", "chat"


class LoadDriver(threading.Thread):
    """Feeds the exporter as a runtime under load would: completions at ``rate`` per second, each
    taking ``latency_s`` and generating ``tokens`` tokens, and a GPU power figure."""

    def __init__(self, exporter: SeriesExporter) -> None:
        super().__init__(daemon=True)
        self.exporter = exporter
        self.rate, self.latency_s, self.tokens, self.power_w = 0.0, 1.0, 200, 150.0
        self._due = 0.0
        self._stop = threading.Event()

    def set(self, *, rate: float, latency_s: float) -> None:
        self.rate, self.latency_s = rate, latency_s

    def run(self) -> None:
        step = 0.25
        while not self._stop.wait(step):
            self._due += self.rate * step
            done, self._due = int(self._due), self._due - int(self._due)
            for _ in range(done):
                self.exporter.request_duration.observe(self.latency_s)
                self.exporter.requests.labels(code="200").inc()
                self.exporter.tokens.labels(kind="generated").inc(self.tokens)
            self.exporter.power.labels(gpu="0", source="estimate").set(self.power_w)
            self.exporter.energy.labels(gpu="0", source="estimate").inc(self.power_w * step)

    def stop(self) -> None:
        self._stop.set()


class Cluster:
    """Reads and writes on the emulated API the scenarios need."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kube = Kube(load_api_client(kubeconfig))
        self.kubeconfig = kubeconfig

    def create_namespace(self, name: str = NAMESPACE) -> None:
        """Create the namespace (already there, e.g. made by the Prometheus fixture: fine)."""
        from thermostat.kube import ApiException

        try:
            self.kube.core.create_namespace({"metadata": {"name": name}}, _preload_content=False)
        except ApiException as error:
            if error.status != 409:
                raise

    def create_routedmodel(self, spec: dict[str, Any], *, name: str = NAME) -> dict[str, Any]:
        body = {
            "apiVersion": "thermostat.dev/v1alpha1",
            "kind": "RoutedModel",
            "metadata": {"name": name},
            "spec": spec,
        }
        response = self.kube.custom.create_namespaced_custom_object(
            "thermostat.dev", "v1alpha1", NAMESPACE, "routedmodels", body, _preload_content=False
        )
        created: dict[str, Any] = json.loads(response.data)
        return created

    def routedmodel(self, name: str = NAME) -> dict[str, Any]:
        return self.kube.read_routedmodel(NAMESPACE, name) or {}

    def status(self, name: str = NAME) -> dict[str, Any]:
        return self.routedmodel(name).get("status") or {}

    def condition(self, type_: str, name: str = NAME) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), {})

    def temperature(self) -> str | None:
        configmap = self.kube.read("ConfigMap", NAMESPACE, f"{NAME}-routing") or {}
        return (configmap.get("data") or {}).get("routing_temperature")

    def replicas(self, name: str = NAME) -> int | None:
        deployment = self.kube.read("Deployment", NAMESPACE, name)
        return None if deployment is None else int(deployment["spec"].get("replicas", 1))

    def ready_replicas(self, name: str = NAME) -> int:
        deployment = self.kube.read("Deployment", NAMESPACE, name) or {}
        return int((deployment.get("status") or {}).get("readyReplicas") or 0)

    def create_deployment(self, name: str) -> None:
        """A Deployment of the user's, one replica (what a drop-in targetRef points at)."""
        labels = {"app": name}
        ports = [{"name": "http", "containerPort": 8000}]
        container = {"name": "server", "image": "vllm/vllm-openai:v0.6.0", "ports": ports}
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
        }  # fmt: skip
        self.kube.apps.create_namespaced_deployment(NAMESPACE, body, _preload_content=False)

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        response = self.kube.core.list_namespaced_event(NAMESPACE, _preload_content=False)
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return [e for e in items if reason is None or e.get("reason") == reason]


class OperatorProcess:
    """``thermostat operator`` as a child process against the emulated API, restartable."""

    def __init__(self, kubeconfig: Path, prometheus_url: str, log: Path, **settings: str) -> None:
        self.kubeconfig, self.log = kubeconfig, log
        defaults = {
            "THERMOSTAT_PROMETHEUS_URL": prometheus_url,
            "THERMOSTAT_METRICS_PORT": "0",
            "THERMOSTAT_LIVENESS_ENDPOINT": "",
            "THERMOSTAT_LOG_FORMAT": "json",
            "THERMOSTAT_PROMETHEUS_TIMEOUT_SECONDS": "1",
        }
        self.env = child_env(**{**defaults, **settings})
        self.process = spawn_operator(str(kubeconfig), env=self.env, log_path=str(log))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except Exception:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.process = spawn_operator(str(self.kubeconfig), env=self.env, log_path=str(self.log))

    def kill_and_restart(self) -> None:
        """SIGKILL (no shutdown handler runs, as on an OOM kill or a node loss), then start afresh."""
        self.process.kill()
        self.process.wait()
        self.process = spawn_operator(str(self.kubeconfig), env=self.env, log_path=str(self.log))

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def publish_pod(cluster: Cluster, name: str, port: int, *, routedmodel: str = NAME) -> None:
    """A runtime pod of ``routedmodel`` serving on 127.0.0.1:``port``, as the kubelet reports one:
    the runtime's labels and ``http`` port in the spec, its address in ``status.podIP``."""
    cluster.create_namespace()
    labels = {"app.kubernetes.io/component": "runtime", "thermostat.dev/routedmodel": routedmodel}
    container = {"name": "runtime", "image": "exporter", "ports": [{"name": "http", "containerPort": port}]}
    pod = {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [container]}}
    cluster.kube.core.create_namespaced_pod(NAMESPACE, pod, _preload_content=False)
    status = {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}}
    cluster.kube.core.patch_namespaced_pod_status(name, NAMESPACE, status, _preload_content=False)
