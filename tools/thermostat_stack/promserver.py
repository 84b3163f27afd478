"""Run a real Prometheus server on a loopback port with a generated config: for tests and the local stack.

    discovery = KubernetesDiscovery(api.url, token)      # an API server and a ServiceAccount's token
    with PrometheusServer(discovery=discovery) as prom:
        prom.url                      # http://127.0.0.1:<free port>
        prom.wait_for_series('up{routedmodel="chat"}')

It finds the runtime pods as it would in a cluster without prometheus-operator: Kubernetes discovery
(role pod) against the API server, with the chart's relabelling (:mod:`thermostat_stack.scrape`), so
the scoping labels ``namespace``, ``pod``, ``routedmodel`` of DESIGN §3 come from the pods themselves.
A binary built without Kubernetes discovery (Debian's) gets the pods from :mod:`poddiscovery` as
file_sd groups with the same meta labels; the relabelling still runs in Prometheus.
``static`` adds plain jobs (job name -> addresses), e.g. the operator's own /metrics; ``jobs`` adds
whole scrape configs as given (e.g. an exporter scraped with ``honor_labels: false`` and target
labels, as a ServiceMonitor would). ``web_config`` is written to ``--web.config.file`` (TLS and
basic auth, Prometheus' exporter-toolkit format); the server's own readiness checks and ``query``
then use ``client_ca`` and ``basic_auth``. The server keeps
its data in a temporary directory removed on ``stop()``. Binary: ``/usr/bin/prometheus`` (Debian) or
``THERMOSTAT_PROMETHEUS_BINARY``.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from thermostat_stack.poddiscovery import PodDiscovery
from thermostat_stack.scrape import KubernetesDiscovery, file_sd_runtime_job, runtime_job

DEFAULT_BINARY = "/usr/bin/prometheus"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind port 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary() -> str:
    """The Prometheus binary, or an error saying how to get one."""
    binary = os.environ.get("THERMOSTAT_PROMETHEUS_BINARY") or shutil.which("prometheus") or DEFAULT_BINARY
    if not Path(binary).exists():
        raise FileNotFoundError(
            f"Prometheus not found at {binary}: install it (apt-get install prometheus) "
            "or set THERMOSTAT_PROMETHEUS_BINARY to its path"
        )
    return binary


@functools.cache
def supports_kubernetes_sd(binary: str) -> bool:
    """Whether this Prometheus was built with Kubernetes discovery (Debian's is not): promtool says."""
    promtool = Path(binary).with_name("promtool")
    if not promtool.exists():
        return False
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "probe.yml"
        config.write_text("scrape_configs: [{job_name: probe, kubernetes_sd_configs: [{role: pod}]}]\n")
        result = subprocess.run([str(promtool), "check", "config", str(config)], capture_output=True, timeout=30)
    return result.returncode == 0


class PrometheusServer:
    """A Prometheus process scraping ``targets`` every ``scrape_interval_s`` seconds."""

    def __init__(
        self,
        *,
        discovery: KubernetesDiscovery | None = None,
        static: Mapping[str, Sequence[str]] | None = None,
        scrape_interval_s: float = 1.0,
        port: int | None = None,
        workdir: Path | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        jobs: Sequence[Mapping[str, Any]] = (),
        web_config: Mapping[str, Any] | None = None,
        client_ca: str | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.discovery = discovery
        self.static = dict(static or {})
        self.scrape_interval_s = scrape_interval_s
        self.port = port or free_port()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="thermostat-prometheus-"))
        self.binary = binary or find_binary()
        self.extra_args = list(extra_args)
        self.jobs = [dict(job) for job in jobs]
        self.web_config = dict(web_config) if web_config is not None else None
        self.client_ca, self.basic_auth = client_ca, basic_auth
        self.process: subprocess.Popen[bytes] | None = None
        self.pod_discovery: PodDiscovery | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.web_config and "tls_server_config" in self.web_config else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _open(self, path: str, timeout_s: float) -> Any:
        """GET ``path`` with this server's own CA and credentials."""
        request = urllib.request.Request(f"{self.url}{path}")
        if self.basic_auth is not None:
            token = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=self.client_ca) if self.url.startswith("https") else None
        return urllib.request.urlopen(request, timeout=timeout_s, context=context)

    def _write_config(self) -> Path:
        interval = f"{max(int(self.scrape_interval_s * 1000), 100)}ms"
        jobs: list[dict[str, Any]] = []
        if self.discovery is not None and supports_kubernetes_sd(self.binary):
            token_file = self.workdir / "token"
            token_file.write_text(self.discovery.token, encoding="utf-8")
            token_file.chmod(0o600)
            jobs.append(runtime_job(self.discovery, token_file=str(token_file), interval=interval))
        elif self.discovery is not None:
            targets = self.workdir / "pods.json"
            d = self.discovery
            self.pod_discovery = PodDiscovery(d.api_server, d.token, targets, d.namespaces).start()
            jobs.append(file_sd_runtime_job(str(targets), interval=interval))
        for job, addresses in self.static.items():
            jobs.append({"job_name": job, "honor_labels": True, "static_configs": [{"targets": list(addresses)}]})
        jobs += self.jobs
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
            "scrape_configs": jobs,
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def start(self, *, timeout_s: float = 30.0) -> PrometheusServer:
        """Launch the server and wait until it reports ready; raises with its log if it does not."""
        config = self._write_config()
        log = (self.workdir / "prometheus.log").open("wb")
        args = [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=2h",
            "--log.level=warn",
            *self._web_args(),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready(timeout_s)
        return self

    def _web_args(self) -> list[str]:
        if self.web_config is None:
            return []
        path = self.workdir / "web.yml"
        path.write_text(yaml.safe_dump(self.web_config), encoding="utf-8")
        return [f"--web.config.file={path}"]

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Prometheus exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with self._open("/-/ready", 1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"Prometheus at {self.url} not ready after {timeout_s:.0f}s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (for tests and readiness checks)."""
        with self._open(f"/api/v1/query?{urllib.parse.urlencode({'query': promql})}", 5) as response:
            body = json.load(response)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for_series(self, promql: str, *, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll until ``promql`` returns a non-empty result; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(self.scrape_interval_s / 2)
        raise TimeoutError(f"{promql} still empty after {timeout_s:.0f}s at {self.url}")

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 10 s) and remove its temporary data."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.pod_discovery is not None:
            self.pod_discovery.stop()
            self.pod_discovery = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
