"""The only module that talks to the Kubernetes API (through the official ``kubernetes`` client).

Every call is synchronous and returns plain JSON dicts (``_preload_content=False``), so callers and
tests see exactly what the server sent; the handlers run these calls in a worker thread. Writes are
merge patches; a 409 on an update is retried a few times, a 409 on create means "exists, update it".
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
from kubernetes.client import ApiClient, ApiException

from thermostat.api.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from thermostat.kube.diff import contains, foreign, update_patch
from thermostat.kube.permissions import Permission, on_owned, requires

logger = logging.getLogger(__name__)
MERGE_PATCH = "application/merge-patch+json"
CONFLICT_ATTEMPTS = 4
T = TypeVar("T")

# kind -> (API class, method suffix): the kinds a RoutedModel owns.
KINDS: dict[str, tuple[str, str]] = {
    "ServiceAccount": ("CoreV1Api", "service_account"),
    "ConfigMap": ("CoreV1Api", "config_map"),
    "Service": ("CoreV1Api", "service"),
    "Role": ("RbacAuthorizationV1Api", "role"),
    "RoleBinding": ("RbacAuthorizationV1Api", "role_binding"),
    "PodDisruptionBudget": ("PolicyV1Api", "pod_disruption_budget"),
    "Deployment": ("AppsV1Api", "deployment"),
}


class ForeignObjectError(Exception):
    """An object the operator would create exists and is someone else's: it is never taken over."""


@dataclass(frozen=True)
class ObjectRef:
    """Who an Event is about."""

    namespace: str
    name: str
    uid: str
    api_version: str = API_VERSION
    kind: str = KIND


def load_api_client(kubeconfig: Path | None = None, *, user_agent: str | None = None) -> ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (``$KUBECONFIG`` or ~/.kube/config).

    ``user_agent`` names the caller in the API server's audit log (the operator sends its own).
    """
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        client = ApiClient()
    else:
        configuration = kubernetes.client.Configuration()
        path = str(kubeconfig) if kubeconfig else None
        kubernetes.config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
        client = ApiClient(configuration)
    if user_agent:
        client.user_agent = user_agent
    return client


def retry_conflicts(call: Callable[[], T], *, attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run ``call``, again after a short pause when the server answers 409 Conflict."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ApiException as error:
            if error.status != 409 or attempt == attempts:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def _json(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


class Kube:
    """Typed-enough access to the objects the operator reads and writes."""

    def __init__(self, api_client: ApiClient) -> None:
        self.api_client = api_client
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.autoscaling = kubernetes.client.AutoscalingV2Api(api_client)
        self.instance = socket.gethostname()

    def _api(self, kind: str) -> tuple[Any, str]:
        if kind not in KINDS:
            raise ValueError(f"thermostat.kube cannot apply kind {kind!r}; known: {', '.join(KINDS)}")
        class_name, suffix = KINDS[kind]
        return getattr(kubernetes.client, class_name)(self.api_client), suffix

    @requires(*on_owned(("get",), "reads the objects a RoutedModel owns"))
    def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        api, suffix = self._api(kind)
        try:
            return _json(getattr(api, f"read_namespaced_{suffix}")(name, namespace, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    @requires(*on_owned(("patch",), "brings owned objects to the desired state"))
    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A merge patch, retried on 409."""
        api, suffix = self._api(kind)
        method = getattr(api, f"patch_namespaced_{suffix}")
        return retry_conflicts(
            lambda: _json(method(name, namespace, patch, _content_type=MERGE_PATCH, _preload_content=False))
        )

    @requires(*on_owned(("get", "create", "patch"), "creates or updates the objects a RoutedModel owns"))
    def apply(self, desired: dict[str, Any]) -> str:
        """Create ``desired`` or bring the live object to it; returns created, updated or unchanged.

        Raises ``ForeignObjectError`` when the live object is not one this RoutedModel created.
        """
        kind, metadata = desired["kind"], desired["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        live = self.read(kind, namespace, name)
        if live is None:
            api, suffix = self._api(kind)
            try:
                getattr(api, f"create_namespaced_{suffix}")(namespace, desired, _preload_content=False)
                return "created"
            except ApiException as error:
                if error.status != 409:
                    raise
                live = self.read(kind, namespace, name) or {}
        if foreign(live, desired):
            raise ForeignObjectError(
                f"{kind} {namespace}/{name} exists and was not created by this RoutedModel; Thermostat never "
                "takes over an object it did not create: rename or remove it (a routing ConfigMap of yours "
                "goes in spec.targetRef.routingConfigMap)"
            )
        patch = update_patch(desired)
        if contains(live, patch):
            return "unchanged"
        self.patch(kind, namespace, name, patch)
        return "updated"

    @requires(Permission("apps", "deployments", ("get", "delete"), "removes a router rollout's canary Deployment"))
    def delete_owned_deployment(self, namespace: str, name: str, claim: dict[str, Any]) -> str:
        """Delete a Deployment this RoutedModel created (``claim``: the metadata it renders, with its mark
        and ownerReference); returns deleted or absent.

        Raises ``ForeignObjectError`` for one it did not create: Thermostat never removes a user's object.
        """
        live = self.read("Deployment", namespace, name)
        if live is None:
            return "absent"
        if foreign(live, {"metadata": claim}):
            raise ForeignObjectError(
                f"Deployment {namespace}/{name} was not created by this RoutedModel: Thermostat never "
                "removes an object it did not create; remove or rename it yourself"
            )
        try:
            self.apps.delete_namespaced_deployment(name, namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise
        return "deleted"

    @requires(Permission("apps", "deployments", ("patch",), "sets replicas as HPA does", subresource="scale"))
    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Set replicas through the scale subresource (what HPA and kubectl scale use)."""
        body = {"spec": {"replicas": replicas}}
        retry_conflicts(
            lambda: self.apps.patch_namespaced_deployment_scale(
                name, namespace, body, _content_type=MERGE_PATCH, _preload_content=False
            )
        )

    @requires(Permission(GROUP, PLURAL, ("patch",), "writes RoutedModel status", subresource="status"))
    def patch_routedmodel_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Write a RoutedModel's status subresource in one merge patch."""
        retry_conflicts(
            lambda: self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": status},
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
        )

    @requires(Permission(GROUP, PLURAL, ("patch",), "removes a one-shot command annotation once it is done"))
    def remove_routedmodel_annotation(self, namespace: str, name: str, key: str) -> None:
        """Drop one annotation of a RoutedModel (a merge patch with null)."""
        body = {"metadata": {"annotations": {key: None}}}
        retry_conflicts(
            lambda: self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE_PATCH, _preload_content=False
            )
        )

    @requires(Permission(GROUP, PLURAL, ("get",), "reads the live spec at each control run"))
    def read_routedmodel(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
                )
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    @requires(Permission("", "secrets", ("get",), "reads spec.metrics.prometheus.authSecretRef"))
    def read_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, base64-decoded; a missing Secret raises ``LookupError`` naming it."""
        import base64

        try:
            secret = _json(self.core.read_namespaced_secret(name, namespace, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                raise LookupError(
                    f"Secret {namespace}/{name} (spec.metrics.prometheus.authSecretRef) not found: create it with "
                    "keys `username` and `password` (or `token`), and `ca.crt` for a private CA"
                ) from error
            if error.status == 403:
                raise LookupError(f"Secret {namespace}/{name} may not be read by the operator (HTTP 403)") from error
            raise
        data = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
        data.update(secret.get("stringData") or {})
        return data

    @requires(Permission("", "events", ("create",), "posts Events on RoutedModels"))
    def post_event(self, about: ObjectRef, *, reason: str, message: str, warning: bool = False) -> None:
        """A core/v1 Event on the RoutedModel, as ``kubectl describe`` shows them."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        event: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{about.name}.", "namespace": about.namespace},
            "involvedObject": {
                "apiVersion": about.api_version,
                "kind": about.kind,
                "name": about.name,
                "namespace": about.namespace,
                "uid": about.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "thermostat-operator"},
            "reportingComponent": "thermostat.dev/operator",
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(about.namespace, event, _preload_content=False)
        except ApiException as error:
            # An Event is a courtesy: losing one must not fail the control run that acted.
            logger.warning("could not post Event %s on %s/%s: %s", reason, about.namespace, about.name, error.reason)
