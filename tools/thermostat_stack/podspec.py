"""The pod template contract (DESIGN §5) read from a Pod: what process the node agent runs for it.

The first container runs ``thermostat-runtime serve ...`` (command and args), its port named ``http``
is the API and metrics port, and its ``env`` carries the routing ConfigMap's name and the downward-API
fields. On this machine each Pod gets an address of its own on the loopback range (127.0.0.N) and its
process listens there on the container's ``http`` port, as a pod does on its pod IP. It runs from this
Python with the package of this tree, uses one torch thread at batch 1 (two cores are the frame,
DESIGN §6), and reaches the API server through the stack's kubeconfig as an in-cluster pod would
through its service account.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNTIME_PROGRAM = "thermostat-runtime"
# The local frame (DESIGN §6): one torch thread per replica, batch 1 (where skipping saves wall time).
# The shadow fraction is the operator's (spec.quality.shadowFraction, rendered into the pod template).
LOCAL_FRAME_ARGS = {"--threads": "1", "--max-batch": "1"}
ROUTEDMODEL_LABEL = "thermostat.dev/routedmodel"


class PodContractError(ValueError):
    """A Pod the node agent cannot run, and why."""


@dataclass(frozen=True)
class RuntimeLaunch:
    """The process to start for one Pod."""

    argv: list[str]
    env: dict[str, str]
    port: int
    routedmodel: str


def is_runtime_pod(pod: dict[str, Any]) -> bool:
    """Whether the Pod's first container runs ``thermostat-runtime serve``."""
    containers = pod.get("spec", {}).get("containers") or []
    if not containers:
        return False
    line = [*(containers[0].get("command") or []), *(containers[0].get("args") or [])]
    return len(line) >= 2 and Path(line[0]).name == RUNTIME_PROGRAM and line[1] == "serve"


def _runtime_pythonpath() -> str:
    # The runtime package of this very tree, found without importing it (it imports torch).
    spec = importlib.util.find_spec("thermostat_runtime")
    if spec is None or spec.origin is None:
        raise PodContractError("the thermostat_runtime package is not installed: pip install -e '.[runtime]'")
    return str(Path(spec.origin).parent.parent)


def local_runtime_args(args: list[str], port: int, host: str = "127.0.0.1") -> list[str]:
    """``serve``'s arguments for this machine: ``host:port`` on loopback, the template's flags, the local frame's."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("--host", "--port"):
            skip = True
            continue
        if arg.startswith(("--host=", "--port=")):
            continue
        out.append(arg)
    out += ["--host", host, "--port", str(port)]
    return out + local_frame_args(out)


def local_frame_args(args: list[str]) -> list[str]:
    """The local frame's flags that ``args`` does not set already."""
    extra: list[str] = []
    for flag, value in LOCAL_FRAME_ARGS.items():
        if not any(a == flag or a.startswith(f"{flag}=") for a in args):
            extra += [flag, value]
    return extra


def _field_value(pod: dict[str, Any], path: str, host: str) -> str:
    fields = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"].get("namespace", "default"),
        "metadata.uid": pod["metadata"].get("uid", ""),
        "status.podIP": host,
        "spec.nodeName": "local",
    }
    if path not in fields:
        raise PodContractError(f"env fieldRef {path!r} is not supported by the local node agent")
    return str(fields[path])


def _container_env(pod: dict[str, Any], container: dict[str, Any], host: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "fieldRef" in var.get("valueFrom", {}):
            env[var["name"]] = _field_value(pod, var["valueFrom"]["fieldRef"]["fieldPath"], host)
        else:
            raise PodContractError(f"env {var['name']}: only value and fieldRef are supported locally")
    return env


def runtime_env(env: dict[str, str]) -> dict[str, str]:
    """A runtime process's environment: this one's, one torch thread, this tree's runtime, then ``env``."""
    return {
        **{k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTHONPATH")},
        # One torch thread per replica: two replicas fit two cores (DESIGN §6).
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": _runtime_pythonpath(),
        "PYTHONUNBUFFERED": "1",
        **env,
    }


def runtime_launch(
    pod: dict[str, Any], *, port: int, kubeconfig: Path, extra_env: dict[str, str], host: str = "127.0.0.1"
) -> RuntimeLaunch:
    """The process for ``pod`` listening on ``host:port`` (:class:`PodContractError` if it breaks the contract)."""
    if not is_runtime_pod(pod):
        raise PodContractError("the first container does not run `thermostat-runtime serve`")
    container = pod["spec"]["containers"][0]
    if not any(p.get("name") == "http" for p in container.get("ports") or []):
        raise PodContractError("the first container has no port named `http`")
    line = [*(container.get("command") or []), *(container.get("args") or [])]
    argv = [sys.executable, "-m", "thermostat_runtime", *local_runtime_args(line[1:], port, host)]
    env = runtime_env({**_container_env(pod, container, host), "KUBECONFIG": str(kubeconfig), **extra_env})
    routedmodel = pod["metadata"].get("labels", {}).get(ROUTEDMODEL_LABEL, "")
    return RuntimeLaunch(argv, env, port, routedmodel)


def grace_period_s(pod: dict[str, Any]) -> float:
    """The Pod's terminationGracePeriodSeconds (Kubernetes' default 30 when unset)."""
    return float(pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))


def http_port(pod: dict[str, Any]) -> int:
    """The first container's port named ``http`` (:class:`PodContractError` when there is none)."""
    container = (pod.get("spec", {}).get("containers") or [{}])[0]
    for port in container.get("ports") or []:
        if port.get("name") == "http" and port.get("containerPort"):
            return int(port["containerPort"])
    raise PodContractError("the first container has no port named `http`")
