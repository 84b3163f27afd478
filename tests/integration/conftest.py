"""Fixtures for integration tests: a real Prometheus (``thermostat_stack.promserver``) scraping an exporter
of the runtime's metric contract, and the emulated API server as a process (``thermostat apiserver``).

``runtime_exporter`` serves the contract's series on a free loopback port; ``prometheus`` scrapes it
every 0.5 s with the scoping labels of the test's RoutedModel (namespace ``it``, routedmodel ``chat``).
``emulated_api`` runs ``python -m thermostat apiserver`` from this tree and yields its kubeconfig; its
request log (every request: verb, resource, user agent) is written when it stops.
Helpers live in ``integration_support``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_support import SCOPE_LABELS, EmulatedApi, SeriesExporter, child_env, wait_for_kubeconfig

from thermostat_stack.promserver import PrometheusServer, ScrapeTarget


@pytest.fixture
def runtime_exporter() -> Iterator[SeriesExporter]:
    exporter = SeriesExporter()
    yield exporter
    exporter.close()


@pytest.fixture
def prometheus(runtime_exporter: SeriesExporter) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping ``runtime_exporter`` as pod ``chat-0`` of RoutedModel it/chat."""
    target = ScrapeTarget(runtime_exporter.address, {**SCOPE_LABELS, "pod": "chat-0"})
    with PrometheusServer(targets=[target], scrape_interval_s=0.5) as server:
        server.wait_for_series('up{routedmodel="chat"} == 1', timeout_s=30)
        yield server


@pytest.fixture
def emulated_api(tmp_path: Path) -> Iterator[EmulatedApi]:
    """The emulated API server (Pods turn Ready 0.5 s after creation), as a child process."""
    kubeconfig, log, audit = tmp_path / "kubeconfig", tmp_path / "apiserver.log", tmp_path / "audit.jsonl"
    command = [sys.executable, "-m", "thermostat", "apiserver", "--port", "0", "--kubeconfig", str(kubeconfig)]
    command += ["--audit-log", str(audit)]
    with log.open("wb") as out:
        process = subprocess.Popen([*command, "--pod-ready-delay", "0.5"], env=child_env(), stdout=out, stderr=out)
    try:
        url = wait_for_kubeconfig(kubeconfig, process, log, timeout_s=60)
        yield EmulatedApi(kubeconfig, url, process, log, audit)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
