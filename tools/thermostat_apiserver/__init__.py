"""An emulated Kubernetes API server for tests and the local stack (``thermostat apiserver``).

Built on kmock's HTTP server and reaction DSL, with the semantics Kopf and kubectl rely on: see
:mod:`store` (resourceVersion, generation, finalizers, garbage collection, watch history),
:mod:`admission` (CRD validation), :mod:`discovery`, :mod:`tables`, :mod:`deployments` and
:mod:`pods` (the Pod-runner hook). Start it in-process with :class:`ApiServer`.
"""

from thermostat_apiserver.pods import DelayedReady, PodHandle, PodRunner
from thermostat_apiserver.server import ApiServer

__all__ = ["ApiServer", "DelayedReady", "PodHandle", "PodRunner"]
