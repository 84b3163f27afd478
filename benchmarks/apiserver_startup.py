"""Benchmark of the emulated API server: start-up to first answered request, and request throughput.

Run from the repository root:  python benchmarks/apiserver_startup.py
Figures go to docs/BENCHMARKS.md (issue 6); nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "tools")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_startup_s() -> float:
    """Seconds from spawning ``python -m thermostat apiserver`` to its first answered request."""
    port = _free_port()
    tree = [str(ROOT / d) for d in ("operator", "tools")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*tree, os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "thermostat", "apiserver", "--port", str(port), "--kubeconfig", f"{tmp}/kc"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=1):
                        return time.perf_counter() - started
                except OSError:
                    time.sleep(0.01)
        finally:
            process.terminate()
            process.wait()


async def in_process() -> tuple[float, float]:
    """(seconds to start an ApiServer in-process, ConfigMap create+get pairs per second over HTTP)."""
    from thermostat_apiserver import ApiServer

    started = time.perf_counter()
    async with ApiServer() as api:
        startup = time.perf_counter() - started
        count = 500
        async with aiohttp.ClientSession() as session:
            began = time.perf_counter()
            for index in range(count):
                body = {"metadata": {"name": f"cm-{index}"}, "data": {"v": str(index)}}
                async with session.post(f"{api.url}/api/v1/namespaces/default/configmaps", json=body) as response:
                    assert response.status == 201
                async with session.get(f"{api.url}/api/v1/namespaces/default/configmaps/cm-{index}") as response:
                    assert response.status == 200
            rate = count / (time.perf_counter() - began)
    return startup, rate


def main() -> None:
    runs = [cli_startup_s() for _ in range(5)]
    startup, rate = asyncio.run(in_process())
    print(f"CLI start-up to first request: median {statistics.median(runs):.2f} s, max {max(runs):.2f} s (5 runs)")
    print(f"in-process ApiServer start-up: {startup * 1000:.0f} ms")
    print(f"ConfigMap create+get over HTTP: {rate:.0f} pairs/s")


if __name__ == "__main__":
    main()
