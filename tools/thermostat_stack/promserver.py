"""Run a real Prometheus server on a loopback port with a generated config: for tests and the local stack.

    with PrometheusServer(targets=[ScrapeTarget("127.0.0.1:9101", {"namespace": "ns", "routedmodel": "chat"})]) as prom:
        prom.url                      # http://127.0.0.1:<free port>
        prom.set_targets([...])       # rewrite the file_sd targets; picked up within about a second
        prom.wait_for_series('up{routedmodel="chat"}')

Targets go through ``file_sd`` so their labels are the scoping labels of DESIGN §3 (``namespace``,
``routedmodel``, ``pod``), exactly as PodMonitor relabelling sets them in a cluster. The server keeps
its data in a temporary directory removed on ``stop()``. Binary: ``/usr/bin/prometheus`` (Debian) or
``THERMOSTAT_PROMETHEUS_BINARY``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

DEFAULT_BINARY = "/usr/bin/prometheus"


@dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint to scrape (``host:port``) and the labels its series get."""

    address: str
    labels: dict[str, str] = field(default_factory=dict)


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


class PrometheusServer:
    """A Prometheus process scraping ``targets`` every ``scrape_interval_s`` seconds."""

    def __init__(
        self,
        *,
        targets: Iterable[ScrapeTarget] = (),
        scrape_interval_s: float = 1.0,
        port: int | None = None,
        workdir: Path | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.scrape_interval_s = scrape_interval_s
        self.port = port or free_port()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="thermostat-prometheus-"))
        self.binary = binary or find_binary()
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self._targets = list(targets)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def targets_file(self) -> Path:
        return self.workdir / "targets.json"

    def set_targets(self, targets: Iterable[ScrapeTarget]) -> None:
        """Replace the scraped targets (written atomically; Prometheus re-reads the file by itself)."""
        self._targets = list(targets)
        groups = [{"targets": [t.address], "labels": dict(t.labels)} for t in self._targets]
        scratch = self.targets_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(groups), encoding="utf-8")
        scratch.replace(self.targets_file)

    def _write_config(self) -> Path:
        interval = f"{max(int(self.scrape_interval_s * 1000), 100)}ms"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
            "scrape_configs": [
                {
                    "job_name": "thermostat",
                    "file_sd_configs": [{"files": [str(self.targets_file)], "refresh_interval": "1s"}],
                }
            ],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def start(self, *, timeout_s: float = 30.0) -> PrometheusServer:
        """Launch the server and wait until it reports ready; raises with its log if it does not."""
        self.set_targets(self._targets)
        config = self._write_config()
        log = (self.workdir / "prometheus.log").open("wb")
        args = [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=2h",
            "--log.level=warn",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Prometheus exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
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
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as response:
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
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
