"""The runtime Deployment: the pod template contract of DESIGN §5, hardened and safe to scale down.

The first container runs ``thermostat-runtime serve``, exposes one port named ``http`` (the OpenAI
API, probes and /metrics) and learns its routing ConfigMap from ``THERMOSTAT_ROUTING_CONFIGMAP`` and
its namespace from the downward API. Scale-down is safe: a preStop pause lets endpoints drop the pod
before SIGTERM, the runtime then finishes in-flight requests, and the grace period covers the longest
generation the spec allows.
"""

from __future__ import annotations

import math
from typing import Any

from thermostat.api.spec import ModelSource, RoutedModelSpec
from thermostat.render.identity import Owner, routing_configmap_name, selector_labels, service_account_name

RUNTIME_CONTAINER = "runtime"
# Seconds between the pod leaving the Service's endpoints and SIGTERM: kube-proxy and ingress
# controllers need a few seconds to stop sending new requests.
PRESTOP_PAUSE_SECONDS = 5
# Slack after the longest request for the runtime to flush metrics and exit.
EXIT_SLACK_SECONDS = 10
PROBE_PERIOD_SECONDS = 10


def termination_grace_seconds(model: ModelSource) -> int:
    """Grace period: the preStop pause, the longest allowed generation, and exit slack."""
    return PRESTOP_PAUSE_SECONDS + math.ceil(model.max_request_seconds) + EXIT_SLACK_SECONDS


def format_fraction(fraction: float) -> str:
    """A share in [0, 1] as the runtime's flags take it, e.g. ``"0.02"``."""
    return repr(round(fraction, 6))


def runtime_command(model: ModelSource, *, shadow_fraction: float) -> list[str]:
    """The runtime's command line (the node agent and kubelet run exactly this).

    ``shadow_fraction`` is ``spec.quality.shadowFraction``: the share of requests the runtime also runs
    at exact so that the operator measures quality online (DESIGN §2); editing it rolls the pods.
    """
    command = ["thermostat-runtime", "serve", "--host", "0.0.0.0", "--port", str(model.port)]
    command += ["--served-model-name", model.served_model_name]
    command += ["--shadow-fraction", format_fraction(shadow_fraction)]
    # The runtime finishes admitted requests for this long after SIGTERM; the grace period covers it.
    command += ["--drain-timeout", str(math.ceil(model.max_request_seconds))]
    if model.model_path:
        command += ["--model", model.model_path]
    return command + runtime_flags(model)


def runtime_flags(model: ModelSource) -> list[str]:
    """``spec.model.runtime`` as the server's flags; an unset limit is left to the runtime's default."""
    limits = model.runtime
    flags = {
        "--max-batch": limits.max_batch,
        "--max-queue": limits.max_queue,
        "--max-tokens-limit": limits.max_tokens_limit,
        "--max-prompt-tokens": limits.max_prompt_tokens,
    }
    return [part for flag, value in flags.items() if value is not None for part in (flag, str(value))]


def _resources(model: ModelSource) -> dict[str, Any]:
    amounts: dict[str, str] = {}
    if model.resources.gpus > 0:
        amounts[model.resources.gpu_resource_name] = str(model.resources.gpus)
    if model.resources.cpu:
        amounts["cpu"] = model.resources.cpu
    if model.resources.memory:
        amounts["memory"] = model.resources.memory
    # Requests equal limits: GPUs cannot be overcommitted, and a Guaranteed pod is evicted last.
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def _env(name: str, spec: RoutedModelSpec, model: ModelSource) -> list[dict[str, Any]]:
    def field_ref(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    env: list[dict[str, Any]] = [
        {"name": "THERMOSTAT_ROUTING_CONFIGMAP", "value": routing_configmap_name(name, spec)},
        {"name": "POD_NAMESPACE", "valueFrom": field_ref("metadata.namespace")},
        {"name": "POD_NAME", "valueFrom": field_ref("metadata.name")},
    ]
    env += [{"name": var.name, "value": var.value} for var in model.env]
    return env


def _probes(model: ModelSource) -> dict[str, Any]:
    def http_get(path: str) -> dict[str, Any]:
        return {"path": path, "port": "http"}

    return {
        # Model loading may take minutes; liveness waits until the startup probe has passed once.
        "startupProbe": {
            "httpGet": http_get("/healthz"),
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "failureThreshold": math.ceil(model.startup_seconds / PROBE_PERIOD_SECONDS),
        },
        "livenessProbe": {
            "httpGet": http_get("/healthz"),
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "failureThreshold": 3,
        },
        # Not ready before the first routing temperature is read (DESIGN §3), nor while draining.
        "readinessProbe": {"httpGet": http_get("/readyz"), "periodSeconds": 5, "failureThreshold": 2},
    }


PODINFO_VOLUME, PODINFO_PATH = "podinfo", "/etc/thermostat/podinfo"


def _track_file(spec: RoutedModelSpec) -> bool:
    """With spec.rollout the pods read their track (label thermostat.dev/track) from the downward API."""
    return spec.rollout is not None


def _container(name: str, spec: RoutedModelSpec, model: ModelSource) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": RUNTIME_CONTAINER,
        "image": model.image,
        "command": runtime_command(model, shadow_fraction=spec.quality.shadow_fraction),
        "ports": [{"name": "http", "containerPort": model.port, "protocol": "TCP"}],
        "env": _env(name, spec, model),
        **_probes(model),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_PAUSE_SECONDS}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if _track_file(spec):
        container["volumeMounts"].append({"name": PODINFO_VOLUME, "mountPath": PODINFO_PATH, "readOnly": True})
        container["env"].append({"name": "THERMOSTAT_POD_LABELS_FILE", "value": f"{PODINFO_PATH}/labels"})
    resources = _resources(model)
    if resources:
        container["resources"] = resources
    return container


def _pod_spec(name: str, spec: RoutedModelSpec, model: ModelSource) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "serviceAccountName": service_account_name(name),
        "terminationGracePeriodSeconds": termination_grace_seconds(model),
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(name, spec, model)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if _track_file(spec):
        # A downward API volume, unlike an env var, follows label changes on a running pod.
        labels = {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
        pod["volumes"].append({"name": PODINFO_VOLUME, "downwardAPI": {"items": [labels]}})
    if model.node_selector:
        pod["nodeSelector"] = dict(model.node_selector)
    if model.priority_class_name:
        pod["priorityClassName"] = model.priority_class_name
    if model.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": secret} for secret in model.image_pull_secrets]
    return pod


def render_deployment(owner: Owner, spec: RoutedModelSpec, *, replicas: int | None) -> dict[str, Any]:
    """The runtime Deployment of a RoutedModel with ``spec.model``.

    ``replicas`` is set only when creating: afterwards the scale subresource owns it, so updates
    leave it out and never undo the controller's (or a person's) choice.
    """
    if spec.model is None:
        raise ValueError("render_deployment needs spec.model; a targetRef RoutedModel drives an existing Deployment")
    model = spec.model
    pod_labels = {**model.pod_labels, **selector_labels(owner.name)}
    annotations = {
        **model.pod_annotations,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(model.port),
        "prometheus.io/path": "/metrics",
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(owner.name)},
        # One new pod at a time and none removed before its replacement is ready: GPUs are scarce.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": pod_labels, "annotations": annotations},
            "spec": _pod_spec(owner.name, spec, model),
        },
    }
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(owner.name, labels=selector_labels(owner.name)),
        "spec": deployment_spec,
    }


TRACK_LABEL, CANARY_TRACK = "thermostat.dev/track", "canary"


def canary_deployment_name(name: str) -> str:
    return f"{name}-canary"


def render_canary_deployment(owner: Owner, spec: RoutedModelSpec, *, replicas: int) -> dict[str, Any]:
    """The canary Deployment of a router rollout: the pod template of ``spec.model`` (the new image) with
    pods on the canary track, ``replicas`` of them, owned by the RoutedModel like the stable one.

    Its pods keep the stable Deployment's selector labels, so the Service sends them their share of the
    requests; its own selector adds the track, so it never counts the stable pods.
    """
    deployment = render_deployment(owner, spec, replicas=replicas)
    name = canary_deployment_name(owner.name)
    deployment["metadata"] = owner.metadata(name, labels={**selector_labels(owner.name), TRACK_LABEL: CANARY_TRACK})
    body = deployment["spec"]
    body["selector"] = {"matchLabels": {**selector_labels(owner.name), TRACK_LABEL: CANARY_TRACK}}
    body["template"]["metadata"]["labels"][TRACK_LABEL] = CANARY_TRACK
    return deployment


def runtime_image(deployment: dict[str, Any] | None) -> str | None:
    """The image of a Deployment's runtime container (the router its pods serve); None when absent."""
    pod = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("containers") or []:
        if container.get("name") == RUNTIME_CONTAINER:
            return str(container.get("image")) if container.get("image") else None
    return None


def with_image(deployment: dict[str, Any], image: str) -> dict[str, Any]:
    """A rendered Deployment whose runtime container keeps ``image`` (the stable router, held)."""
    pod = deployment["spec"]["template"]["spec"]
    containers = [{**c, "image": image} if c["name"] == RUNTIME_CONTAINER else c for c in pod["containers"]]
    template = {**deployment["spec"]["template"], "spec": {**pod, "containers": containers}}
    return {**deployment, "spec": {**deployment["spec"], "template": template}}
