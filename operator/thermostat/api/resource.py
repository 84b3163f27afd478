"""The RoutedModel resource as a whole: identity of the API group and the object envelope."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from thermostat.api.spec import RoutedModelSpec
from thermostat.api.status import RoutedModelStatus

GROUP = "thermostat.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "RoutedModel"
PLURAL = "routedmodels"
SINGULAR = "routedmodel"
SHORT_NAMES = ("rm",)
CATEGORIES = ("thermostat", "all")
# Ownership marks (annotations; see thermostat.render.ownership and docs/operator.md).
CREATED_BY_ANNOTATION = f"{GROUP}/created-by"  # an object the operator created (and owns)
MANAGED_BY_ANNOTATION = f"{GROUP}/managed-by"  # a user's object the operator drives in place
ORIGINAL_DATA_ANNOTATION = f"{GROUP}/original-data"  # a user's ConfigMap keys as they were before


class RoutedModel(BaseModel):
    """A RoutedModel object: the envelope around its spec and status."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", strict=True)

    api_version: Literal["thermostat.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["RoutedModel"]
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RoutedModelSpec
    status: RoutedModelStatus | None = None
