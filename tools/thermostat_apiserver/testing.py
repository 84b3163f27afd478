"""pytest fixtures for tests that need a Kubernetes API: import them in a conftest
(``from thermostat_apiserver.testing import apiserver, apiserver_kubeconfig``) or list the module in the
root conftest's ``pytest_plugins``.

``apiserver`` is a running :class:`ApiServer` (Pods Ready after 0.2 s); ``apiserver_kubeconfig`` is
a kubeconfig file for it, also exported as ``KUBECONFIG`` for the test, so Kopf, the kubernetes
client and kubectl find it without further set-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from thermostat_apiserver.server import ApiServer


@pytest.fixture
async def apiserver() -> AsyncIterator[ApiServer]:
    async with ApiServer(pod_ready_delay_s=0.2) as server:
        yield server


@pytest.fixture
def apiserver_kubeconfig(apiserver: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path
