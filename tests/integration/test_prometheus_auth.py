"""Prometheus behind TLS and basic auth: the operator reads the Secret, verifies the CA, says what is wrong.

A real Prometheus runs with ``--web.config.file`` (a certificate from a CA made in the test, a bcrypt
password); the real operator process observes it with the credentials of
``spec.metrics.prometheus.authSecretRef``. A missing Secret, a wrong password and a CA that did not
sign the server each give ``MetricsAvailable=False`` with a message naming the Secret and what is
wrong; the replicas never go down meanwhile and the operator logs no traceback. The right Secret
makes the metrics available.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_support import NAME, NAMESPACE, Cluster, EmulatedApi, LoadDriver, OperatorProcess, wait_until
from rbac_support import install_discovery_identity
from tls_support import CertificateAuthority, web_config

from thermostat_stack.promserver import PrometheusServer
from thermostat_stack.scrape import KubernetesDiscovery

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

USER, PASSWORD, SECRET = "thermostat", "correct horse", "prometheus-credentials"


@pytest.fixture
def secure_prometheus(
    emulated_api: EmulatedApi, runtime_exporter: Any, tmp_path: Path
) -> Iterator[tuple[PrometheusServer, CertificateAuthority]]:
    """Prometheus serving TLS with a certificate of a fresh CA, and that CA."""
    from integration_support import publish_pod

    ca = CertificateAuthority()
    publish_pod(Cluster(emulated_api.kubeconfig), "chat-0", runtime_exporter.port)
    token, _ = install_discovery_identity(emulated_api.kubeconfig)
    config = web_config(tmp_path, ca, {USER: PASSWORD})
    server = PrometheusServer(
        discovery=KubernetesDiscovery(emulated_api.url, token), scrape_interval_s=0.5, web_config=config,
        client_ca=str(tmp_path / "ca.crt"), basic_auth=(USER, PASSWORD),
    )  # fmt: skip
    with server:
        server.wait_for_series('up{routedmodel="chat",pod="chat-0"} == 1', timeout_s=30)
        yield server, ca


def put_secret(cluster: Cluster, data: dict[str, str]) -> None:
    """Create or replace the credentials Secret."""
    from thermostat.kube import ApiException

    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    body = {"metadata": {"name": SECRET, "namespace": NAMESPACE}, "data": encoded}
    try:
        cluster.kube.core.create_namespaced_secret(NAMESPACE, body, _preload_content=False)
    except ApiException as error:
        if error.status != 409:
            raise
        cluster.kube.core.replace_namespaced_secret(SECRET, NAMESPACE, body, _preload_content=False)


def metrics_condition_mentions(cluster: Cluster, *words: str) -> dict[str, Any] | None:
    condition = cluster.condition("MetricsAvailable")
    message = condition.get("message", "")
    return condition if condition.get("status") == "False" and all(w in message for w in words) else None


def test_wrong_password_unknown_ca_and_missing_secret_are_named_and_never_scale_down(
    emulated_api: EmulatedApi, secure_prometheus: tuple[PrometheusServer, CertificateAuthority], runtime_exporter: Any,
    operator_kubeconfig: Path, tmp_path: Path,
) -> None:  # fmt: skip
    prometheus, ca = secure_prometheus
    cluster = Cluster(emulated_api.kubeconfig)
    cluster.create_namespace()
    load = LoadDriver(runtime_exporter)
    load.start()
    load.set(rate=0.5, latency_s=1.0)  # light: with metrics the law would scale 2 replicas down to 1
    operator = OperatorProcess(operator_kubeconfig, prometheus.url, tmp_path / "operator.log")
    try:
        spec = {
            "model": {"image": "thermostat/runtime:dev", "resources": {"gpus": 0}},
            "slo": {"targetSeconds": 10, "windowSeconds": 15},
            "replicas": {"min": 1, "max": 3},
            "behavior": {"periodSeconds": 1, "metricsMaxAgeSeconds": 10,
                         "scaleDown": {"stabilizationWindowSeconds": 0, "maxStepReplicas": 1}},
            "metrics": {"prometheus": {"url": prometheus.url, "authSecretRef": {"name": SECRET}}},
        }  # fmt: skip
        cluster.create_routedmodel(spec)
        wait_until(lambda: cluster.replicas() is not None, timeout_s=60, what="the Deployment")
        cluster.kube.apps.patch_namespaced_deployment_scale(NAME, NAMESPACE, {"spec": {"replicas": 2}})
        secret = f"Secret {NAMESPACE}/{SECRET}"
        wait_until(lambda: metrics_condition_mentions(cluster, secret, "not found"), timeout_s=60, what="no Secret")
        put_secret(cluster, {"username": USER, "password": "wrong", "ca.crt": ca.pem})
        wait_until(
            lambda: metrics_condition_mentions(cluster, secret, "refused the username/password"),
            timeout_s=60, what="wrong password named",
        )  # fmt: skip
        put_secret(cluster, {"username": USER, "password": PASSWORD, "ca.crt": CertificateAuthority("other").pem})
        wait_until(
            lambda: metrics_condition_mentions(cluster, secret, "not signed by key `ca.crt`"),
            timeout_s=60, what="unknown CA named",
        )  # fmt: skip
        assert cluster.replicas() == 2, "a scale-down while the metrics were unavailable"
        put_secret(cluster, {"username": USER, "password": PASSWORD, "ca.crt": ca.pem})
        wait_until(lambda: cluster.condition("MetricsAvailable").get("status") == "True", timeout_s=60, what="metrics")
        assert "Traceback" not in operator.log_tail(10**6)
    finally:
        print(operator.log_tail())
        operator.stop()
        load.stop()
