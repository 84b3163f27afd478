"""``thermostat apiserver``: run the emulated API server until interrupted, writing a kubeconfig."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from thermostat_apiserver.server import ApiServer


def _line_writer(sink: TextIO) -> Callable[[dict[str, Any]], None]:
    def write(entry: dict[str, Any]) -> None:
        sink.write(json.dumps(entry) + "\n")
        sink.flush()

    return write


async def serve_forever(*, port: int, kubeconfig: Path, pod_ready_delay_s: float, audit_log: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    sink = audit_log.open("a", encoding="utf-8") if audit_log is not None else None
    try:
        server = ApiServer(port=port, pod_ready_delay_s=pod_ready_delay_s)
        if sink is not None:  # one JSON line per answered request, as it is answered: tests read it live
            server.kmock.audit_sink = _line_writer(sink)
        async with server as api:
            api.write_kubeconfig(kubeconfig)
            print(f"serving the emulated Kubernetes API at {api.url}; kubeconfig: {kubeconfig}", flush=True)
            await stop.wait()
    except OSError as error:
        print(f"cannot serve on 127.0.0.1:{port}: {error}; pick another --port (0 picks a free one)", file=sys.stderr)
        raise SystemExit(2) from error
    finally:
        if sink is not None:
            sink.close()
