"""Fixtures for integration tests: a real Prometheus (``thermostat_stack.promserver``) scraping an exporter
of the runtime's metric contract, and the emulated API server as a process (``thermostat apiserver``).

``runtime_exporter`` serves the contract's series on a free loopback port; ``prometheus`` discovers it
as a runtime pod of the test's RoutedModel (namespace ``it``, routedmodel ``chat``) through the
emulated API and scrapes it every 0.5 s.
``emulated_api`` runs ``python -m thermostat apiserver`` from this tree and yields its kubeconfig and
request log; ``operator_kubeconfig`` installs the chart's ServiceAccount and RBAC there and is a
kubeconfig with that account's token: the operator runs as its chart installs it.
``cluster`` is the test namespace through the client, ``load`` drives the exporter's series, and
``operator`` is the operator process against that Prometheus (a module needing another one defines its
own). Helpers live in ``integration_support``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_support import (
    Cluster,
    EmulatedApi,
    LoadDriver,
    OperatorProcess,
    SeriesExporter,
    child_env,
    publish_pod,
    wait_for_kubeconfig,
)
from rbac_support import DISCOVERY_USER, Audit, discovering_prometheus, install_operator_identity, never_exercised

from thermostat_stack.promserver import PrometheusServer


@pytest.fixture
def runtime_exporter() -> Iterator[SeriesExporter]:
    exporter = SeriesExporter(slo_target_seconds=0.6)  # test_prometheus_source's SLO target
    yield exporter
    exporter.close()


@pytest.fixture
def prometheus(emulated_api: EmulatedApi, runtime_exporter: SeriesExporter) -> Iterator[PrometheusServer]:
    """A real Prometheus finding ``runtime_exporter`` as pod ``chat-0`` of RoutedModel it/chat the way it
    would in a cluster: Kubernetes discovery against the emulated API, the chart's relabelling, as its
    own ServiceAccount with the chart's discovery RBAC. Afterwards its requests were all allowed and used."""
    publish_pod(Cluster(emulated_api.kubeconfig), "chat-0", runtime_exporter.port)
    with discovering_prometheus(emulated_api, scrape_interval_s=0.5) as (server, table):
        server.wait_for_series('up{routedmodel="chat",pod="chat-0",namespace="it"} == 1', timeout_s=30)
        yield server
    assert not never_exercised(table, emulated_api.audit.exercised(DISCOVERY_USER, table))


@pytest.fixture
def pod_ready_delay_s() -> float:
    """Seconds before an emulated Pod turns Ready (a module overrides it to model cold starts)."""
    return 0.5


@pytest.fixture
def emulated_api(tmp_path: Path, pod_ready_delay_s: float) -> Iterator[EmulatedApi]:
    """The emulated API server (Pods turn Ready ``pod_ready_delay_s`` after creation), as a child process."""
    kubeconfig, log, audit = tmp_path / "kubeconfig", tmp_path / "apiserver.log", tmp_path / "audit.jsonl"
    command = [sys.executable, "-m", "thermostat", "apiserver", "--port", "0", "--kubeconfig", str(kubeconfig),
               "--audit-log", str(audit)]  # fmt: skip
    with log.open("wb") as out:
        command += ["--pod-ready-delay", str(pod_ready_delay_s)]
        process = subprocess.Popen(command, env=child_env(), stdout=out, stderr=out)
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


@pytest.fixture
def cluster(emulated_api: EmulatedApi) -> Cluster:
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    return cluster


@pytest.fixture
def load(runtime_exporter: SeriesExporter) -> Iterator[LoadDriver]:
    driver = LoadDriver(runtime_exporter)
    driver.start()
    yield driver
    driver.stop()


@pytest.fixture
def operator(operator_kubeconfig: Path, prometheus: PrometheusServer, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(operator_kubeconfig, prometheus.url, tmp_path / "operator.log")
    yield process
    process.stop()
    print(process.log_tail())  # shown by pytest when the test failed
