"""One RoutedModel's reconcile, shaped as Karpenter's: ``gather -> World`` (every read), ``decide``
(the law), ``plan_actions`` (pure: writes, Events, health), ``apply`` (the only writes), one status
patch. ``cycle`` sequences them; handlers call ``control_run`` and ``ensure_owned``.
"""

from thermostat.reconcile.actions import Actions, ApplyObject, Outcome, PatchConfigMap, PatchObject, Scale
from thermostat.reconcile.apply import apply, write_status
from thermostat.reconcile.cycle import DEFAULT_PERIOD_S, control_run, ensure_owned
from thermostat.reconcile.gather import build_observation, gather, gather_owned
from thermostat.reconcile.plan import plan_actions, plan_owned
from thermostat.reconcile.release import drives_users_objects, plan_release, release
from thermostat.reconcile.replicas import ReplicaWatch
from thermostat.reconcile.settle import settle
from thermostat.reconcile.world import Context, ResourceState, Subject, Workload, World

__all__ = [
    "DEFAULT_PERIOD_S",
    "Actions",
    "ApplyObject",
    "Context",
    "Outcome",
    "PatchConfigMap",
    "PatchObject",
    "ReplicaWatch",
    "ResourceState",
    "Scale",
    "Subject",
    "Workload",
    "World",
    "apply",
    "build_observation",
    "control_run",
    "drives_users_objects",
    "ensure_owned",
    "gather",
    "gather_owned",
    "plan_actions",
    "plan_owned",
    "plan_release",
    "release",
    "settle",
    "write_status",
]
