"""The Kubernetes side: the only package that talks to the API server (official ``kubernetes`` client).

``ApiException`` is re-exported so the layers above catch the client's errors without importing it.
"""

from kubernetes.client import ApiException

from thermostat.kube.client import ForeignObjectError, Kube, ObjectRef, load_api_client, retry_conflicts
from thermostat.kube.diff import contains, update_patch
from thermostat.kube.scalers import TRACK_LABEL, list_pods, mark_for_removal, other_scalers, set_track

__all__ = [
    "TRACK_LABEL",
    "ApiException",
    "ForeignObjectError",
    "Kube",
    "ObjectRef",
    "contains",
    "list_pods",
    "load_api_client",
    "mark_for_removal",
    "other_scalers",
    "retry_conflicts",
    "set_track",
    "update_patch",
]
