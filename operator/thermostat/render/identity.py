"""Names, labels and owner references shared by every object a RoutedModel owns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thermostat.api.resource import API_VERSION, CREATED_BY_ANNOTATION, KIND
from thermostat.api.spec import RoutedModelSpec

ROUTEDMODEL_LABEL = "thermostat.dev/routedmodel"
COMPONENT_LABEL = "app.kubernetes.io/component"
RUNTIME_COMPONENT = "runtime"
MANAGED_BY = "thermostat"


@dataclass(frozen=True)
class Owner:
    """The RoutedModel an object belongs to: enough to name it and point an ownerReference at it."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def from_body(cls, body: Any) -> Owner:
        """Read the identity from a RoutedModel object (a dict or Kopf's body)."""
        metadata = body["metadata"]
        return cls(name=metadata["name"], namespace=metadata["namespace"], uid=metadata["uid"])

    def reference(self) -> dict[str, Any]:
        """A controlling ownerReference: the garbage collector deletes the object with its owner."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(self, name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Metadata of an object this RoutedModel creates (and so owns) called ``name``."""
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": {**owned_labels(self.name), **(labels or {})},
            "annotations": {CREATED_BY_ANNOTATION: self.name},
            "ownerReferences": [self.reference()],
        }


def owned_labels(routedmodel: str) -> dict[str, str]:
    """Labels on every owned object: who manages it and for which RoutedModel."""
    return {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/instance": routedmodel,
        ROUTEDMODEL_LABEL: routedmodel,
    }


def selector_labels(routedmodel: str) -> dict[str, str]:
    """The labels selecting a RoutedModel's runtime pods (immutable once the Deployment exists)."""
    return {ROUTEDMODEL_LABEL: routedmodel, COMPONENT_LABEL: RUNTIME_COMPONENT}


def routing_configmap_name(routedmodel: str, spec: RoutedModelSpec) -> str:
    """The routing ConfigMap's name: ``<routedmodel>-routing`` unless targetRef names another."""
    if spec.target_ref is not None and spec.target_ref.routing_config_map:
        return spec.target_ref.routing_config_map
    return f"{routedmodel}-routing"


def service_account_name(routedmodel: str) -> str:
    """The runtime pods' ServiceAccount."""
    return f"{routedmodel}-runtime"


def routing_reader_name(routedmodel: str) -> str:
    """The Role and RoleBinding letting the pods read their routing ConfigMap."""
    return f"{routedmodel}-routing-reader"
