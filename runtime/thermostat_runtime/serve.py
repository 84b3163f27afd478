"""Running a ``RuntimeServer`` as a process: routing source from flags/env, signals, graceful drain.

SIGTERM or SIGINT starts the drain (see ``server``): readiness drops, new generation requests get 503,
admitted requests finish and are answered, then the listener closes and the process exits 0. A second
signal during the drain is ignored; ``--drain-timeout`` bounds it (Kubernetes' default grace period is
30 s: keep the drain timeout below terminationGracePeriodSeconds minus the preStop sleep).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from thermostat_runtime.routing_config import ConfigMapSource, FileSource, RoutingSetting, TrackFile
from thermostat_runtime.server import RoutingSource, RuntimeServer

log = logging.getLogger(__name__)

ENV_CONFIGMAP = "THERMOSTAT_ROUTING_CONFIGMAP"
ENV_NAMESPACE = "POD_NAMESPACE"
ENV_LABELS_FILE = "THERMOSTAT_POD_LABELS_FILE"  # the downward API's labels file: the pod's track


def routing_sources(
    setting: RoutingSetting, temperature: float | None, temperature_file: Path | None
) -> list[RoutingSource]:
    """The flag, the file, the ConfigMap named in the environment, or exact (T = 1) by default."""
    if temperature is not None and temperature_file is not None:
        raise ValueError("give --routing-temperature or --routing-temperature-file, not both")
    if temperature is not None:
        if not setting.update(str(temperature), "--routing-temperature"):
            raise ValueError(f"--routing-temperature must be a number in (0, 1], got {temperature}")
        return []
    if temperature_file is not None:
        return [FileSource(temperature_file, setting)]
    configmap = os.environ.get(ENV_CONFIGMAP)
    if configmap:
        namespace = os.environ.get(ENV_NAMESPACE) or "default"
        labels = os.environ.get(ENV_LABELS_FILE)
        if not labels:
            return [ConfigMapSource(namespace, configmap, setting)]
        track = TrackFile(Path(labels))
        source = ConfigMapSource(namespace, configmap, setting, track=lambda: track.track)
        track.on_change.append(source.reapply)
        return [track, source]
    setting.update("1.0", "default (no routing source given: exact)")
    return []


def initial_slo_target(sources: list[RoutingSource]) -> float | None:
    """The SLO target from the routing ConfigMap, read once before serving (None without one)."""
    for source in sources:
        if isinstance(source, ConfigMapSource):
            return source.read_initial()
    return None


def configure_logging() -> None:
    """Human-readable logs on stderr; request lines are bare JSON objects, one per line."""
    import prometheus_client

    # The *_created samples are one extra series per counter that no query of ours reads.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    requests = logging.getLogger("thermostat_runtime.requests")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    requests.addHandler(handler)
    requests.propagate = False


async def serve_until_signal(server: RuntimeServer, host: str, port: int) -> None:
    """Listen until SIGTERM/SIGINT, then drain and stop."""
    runner = web.AppRunner(server.make_app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    # The local stack and the tests read the bound port from this line (--port 0 picks a free one).
    log.info("listening on %s", ", ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received: draining (%d requests pending)", server.scheduler.pending())
    drained = await server.drain()
    log.info("drain %s; shutting down", "complete" if drained else "timed out")
    await runner.cleanup()
