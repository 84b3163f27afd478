"""Fixtures for integration tests: a real Prometheus (``thermostat_stack.promserver``) scraping an exporter
of the runtime's metric contract, and the emulated API server as a process (``thermostat apiserver``).

``runtime_exporter`` serves the contract's series on a free loopback port; ``prometheus`` scrapes it
every 0.5 s with the scoping labels of the test's RoutedModel (namespace ``it``, routedmodel ``chat``).
``emulated_api`` runs ``python -m thermostat apiserver`` from this tree and yields its kubeconfig and
request log; ``operator_kubeconfig`` installs the chart's ServiceAccount and RBAC there and is a
kubeconfig with that account's token: the operator runs as its chart installs it.
Helpers live in ``integration_support``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_support import SCOPE_LABELS, EmulatedApi, SeriesExporter, child_env, wait_for_kubeconfig
from rbac_support import Audit, install_operator_identity

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
    command = [sys.executable, "-m", "thermostat", "apiserver", "--port", "0", "--kubeconfig", str(kubeconfig),
               "--audit-log", str(audit)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen([*command, "--pod-ready-delay", "0.5"], env=child_env(), stdout=out, stderr=out)
    try:
        url = wait_for_kubeconfig(kubeconfig, process, log, timeout_s=60)
        yield EmulatedApi(kubeconfig, url, process, log, Audit(audit))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def operator_kubeconfig(emulated_api: EmulatedApi, tmp_path: Path) -> Path:
    """The chart's operator ServiceAccount and RBAC installed; a kubeconfig with its token."""
    return install_operator_identity(emulated_api.kubeconfig, tmp_path / "operator-kubeconfig")
