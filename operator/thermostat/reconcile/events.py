"""Every Event the operator posts on a RoutedModel, built by one typed constructor each.

Normal Events report what Thermostat changed; Warning Events are what a person should look at.
Planning returns these values; only ``thermostat.reconcile.apply`` posts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from thermostat.api.status import Condition, RoutedModelStatus
from thermostat.control.conditions import WAITING_FOR_REPLICAS, ConditionType

EVENT_MESSAGE_CHARS = 1024


@dataclass(frozen=True)
class Event:
    """A core/v1 Event about the RoutedModel."""

    reason: str
    message: str
    warning: bool = False


def temperature_changed(before: float, after: float, why: str) -> Event:
    """The routing temperature was written to the ConfigMap."""
    return Event("RoutingTemperatureChanged", f"{before:.2f}→{after:.2f}: {why}")


def replicas_changed(before: int, after: int, why: str) -> Event:
    """The Deployment was scaled through its scale subresource."""
    return Event("ReplicasChanged", f"{before}→{after}: {why}")


def replicas_changed_externally(deployment: str, live: int, last: int) -> Event:
    """Someone else set the replicas once: adopted as the next decision's starting point."""
    return Event(
        "ReplicasChangedExternally",
        f"Deployment {deployment} replicas set to {live} outside Thermostat (last seen {last}): "
        "taken as the starting point of the next decision",
        warning=True,
    )


def replicas_overridden(message: str) -> Event:
    """Replicas changed outside Thermostat twice in a row: replica control pauses."""
    return Event("ReplicasOverridden", message, warning=True)


def other_scaler(scalers: tuple[str, ...], deployment: str) -> Event:
    """Another scaler was found on the Deployment: replicas are its; Thermostat keeps the temperature."""
    return Event(
        "OtherScaler",
        f"{', '.join(scalers)} also scale(s) Deployment {deployment}: Thermostat yields the replicas to it and "
        "steers the routing temperature only",
        warning=True,
    )


def configmap_recreated(name: str, temperature: float) -> Event:
    """Our routing ConfigMap was gone (deleted by hand): created again with the temperature in force."""
    return Event(
        "RoutingConfigMapRecreated",
        f"ConfigMap {name} was deleted: created again with routing_temperature {temperature:.2f}, the value "
        "the pods kept meanwhile",
        warning=True,
    )


def memory_reset(why: str) -> Event:
    """The law's stored memory had another version and was reset."""
    return Event("MemoryReset", why, warning=True)


def objects_applied(changes: list[str]) -> Event:
    """Owned objects were created or updated (``created Deployment/chat``, ...)."""
    return Event("Applied", "; ".join(changes)[:EVENT_MESSAGE_CHARS])


def _ready(status: RoutedModelStatus | None) -> Condition | None:
    conditions = status.conditions if status else []
    return next((c for c in conditions if c.type == ConditionType.READY), None)


def ready_lost(before: RoutedModelStatus | None, after: RoutedModelStatus) -> Event | None:
    """A Warning when Ready turns False with a new reason or message (pods starting is normal)."""
    old, new = _ready(before), _ready(after)
    if new is None or new.status == "True" or new.reason == WAITING_FOR_REPLICAS:
        return None
    if old is not None and (old.reason, old.message) == (new.reason, new.message):
        return None
    return Event(new.reason, new.message, warning=True)
