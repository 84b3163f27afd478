"""Fixtures: an emulated API server per test, a kubeconfig for it, and the machine's kubectl."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from thermostat_apiserver import ApiServer

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
REPO = Path(__file__).resolve().parents[3]

Kubectl = Callable[..., "asyncio.Future[subprocess.CompletedProcess[str]]"]


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with ApiServer(pod_ready_delay_s=0.2) as server:
        yield server


@pytest.fixture
def kubeconfig(api: ApiServer, tmp_path: Path) -> Path:
    return api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kubectl(kubeconfig: Path) -> Callable[..., Any]:
    """Run kubectl against the server without blocking its event loop; returns the CompletedProcess."""
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed (expected at /usr/bin/kubectl)")

    async def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        process = await asyncio.create_subprocess_exec(
            KUBECTL,
            "--kubeconfig",
            str(kubeconfig),
            *args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), timeout=60)
        result = subprocess.CompletedProcess(list(args), process.returncode or 0, out.decode(), err.decode())
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    return run


def items(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return list(json.loads(result.stdout)["items"])
