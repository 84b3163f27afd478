"""Start the operator in this process: ``thermostat operator`` and the in-process runner of tests.

``run_operator()`` blocks until the process is told to stop (SIGINT/SIGTERM) or ``stop_flag`` is set;
``ready_flag`` is set once Kopf watches the cluster. The settings come from ``THERMOSTAT_*``.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

from thermostat.settings import OperatorSettings


def run_operator(
    settings: OperatorSettings | None = None,
    *,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run Kopf with the handlers of ``thermostat.handlers``."""
    import kopf

    import thermostat.handlers  # noqa: F401  (registers the handlers)

    settings = settings or OperatorSettings()
    options: dict[str, Any] = {
        "standalone": settings.peering is None,
        "peering_name": settings.peering,
        "priority": settings.peering_priority(time.time()),
        "liveness_endpoint": settings.liveness_endpoint or None,
    }
    if settings.namespaces:
        options["namespaces"] = settings.namespaces
    else:
        options["clusterwide"] = True
    kopf.configure(verbose=settings.log_level == "DEBUG")
    kopf.run(stop_flag=stop_flag, ready_flag=ready_flag, **options)


def operator_command(kubeconfig: str | None = None) -> list[str]:
    """The command line starting the operator as a process (the one the local stack and tests use)."""
    import sys

    command = [sys.executable, "-m", "thermostat", "operator"]
    return [*command, "--kubeconfig", kubeconfig] if kubeconfig else command


def spawn_operator(kubeconfig: str, *, env: dict[str, str], log_path: str) -> subprocess.Popen[bytes]:
    """Start ``thermostat operator`` against ``kubeconfig`` with extra ``THERMOSTAT_*`` variables in ``env``.

    Its logs (JSON lines unless ``THERMOSTAT_LOG_FORMAT=text``) go to ``log_path``. Stop it with
    ``terminate()``: Kopf stops its daemons and exits within a few seconds.
    """
    import os

    log = open(log_path, "ab")  # noqa: SIM115  (handed to the child; closed when this process exits)
    return subprocess.Popen(
        operator_command(kubeconfig), env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
