"""Static checks as tests, so plain `pytest` runs them: ruff, mypy and the import contracts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    # This tree's packages, not an editable install of another checkout.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("operator", "runtime", "tools"))}
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)


def test_ruff_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", "operator", "runtime", "tools", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is not installed: pip install -e '.[dev]'"
    result = _run(lint_imports, "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
