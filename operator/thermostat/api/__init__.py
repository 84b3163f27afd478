"""The RoutedModel API: pydantic models that are the single source of the CRD and its checks.

Public surface: the spec and status models, the resource identity constants, and the CRD generator.
Nothing here imports Kopf, the Kubernetes client or torch (an import-linter contract).
"""

from thermostat.api.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION, RoutedModel
from thermostat.api.spec import (
    Behavior,
    Budget,
    LatencySlo,
    MetricsPreset,
    MetricsSpec,
    MetricsUnavailable,
    MetricsUnavailableAction,
    Mode,
    ModelSource,
    PowerSource,
    Priority,
    Quality,
    ReplicaBounds,
    RoutedModelSpec,
    ScalingRules,
    SloMetric,
    TargetRef,
)
from thermostat.api.status import (
    Condition,
    ConditionStatus,
    DecisionRecord,
    Display,
    LawMemory,
    Observation,
    RoutedModelStatus,
    Settings,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Behavior",
    "Budget",
    "Condition",
    "ConditionStatus",
    "DecisionRecord",
    "Display",
    "LatencySlo",
    "LawMemory",
    "MetricsPreset",
    "MetricsSpec",
    "MetricsUnavailable",
    "MetricsUnavailableAction",
    "Mode",
    "ModelSource",
    "Observation",
    "PowerSource",
    "Priority",
    "Quality",
    "ReplicaBounds",
    "RoutedModel",
    "RoutedModelSpec",
    "RoutedModelStatus",
    "ScalingRules",
    "Settings",
    "SloMetric",
    "TargetRef",
]
