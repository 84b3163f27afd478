"""The ``thermostat apiserver`` command, registered through the ``thermostat.commands`` entry points.

The module imports the server (kmock, aiohttp) at the top on purpose: ``thermostat.cli`` loads it only
when this command is asked for, and a missing ``apiserver`` extra then shows as a failed load that the
CLI reports with the extra to install.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from thermostat_apiserver.cli import serve_forever


def apiserver(
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port on 127.0.0.1 (0 picks a free one).")] = 0,
    kubeconfig: Annotated[
        Path, typer.Option(help="Where to write the kubeconfig for kubectl and the operator.")
    ] = Path("kubeconfig"),
    pod_ready_delay: Annotated[float, typer.Option(min=0.0, help="Seconds before a Pod turns Ready.")] = 1.0,
    audit_log: Annotated[Path | None, typer.Option(help="Append every served request here (JSON lines).")] = None,
) -> None:
    """Serve an emulated Kubernetes API (RoutedModel CRD, Deployments, Pods...) until interrupted."""
    asyncio.run(serve_forever(port=port, kubeconfig=kubeconfig, pod_ready_delay_s=pod_ready_delay, audit_log=audit_log))
