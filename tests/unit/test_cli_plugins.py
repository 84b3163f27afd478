"""The tools' subcommands of `thermostat`: declared as entry points, loaded only when asked for."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thermostat import cli

ROOT = Path(__file__).resolve().parents[2]
DECLARED = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"][
    cli.PLUGIN_GROUP
]

pytestmark = pytest.mark.fast


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=cli.PLUGIN_GROUP)


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry points as pyproject.toml declares them, whatever this environment has installed."""
    monkeypatch.setattr(cli, "plugin_commands", lambda: {n: entry(n, v) for n, v in DECLARED.items()})


def test_the_tools_declare_apiserver_and_up() -> None:
    assert DECLARED == {"apiserver": "thermostat_apiserver.command:apiserver", "up": "thermostat_stack.command:up"}


@pytest.mark.usefixtures("declared")
@pytest.mark.parametrize(("command", "option"), [("apiserver", "--pod-ready-delay"), ("up", "--trace-offset")])
def test_each_tool_command_keeps_its_options(command: str, option: str) -> None:
    result = CliRunner().invoke(cli.app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert option in result.output


@pytest.mark.usefixtures("declared")
def test_the_help_lists_the_tools_after_the_core_commands() -> None:
    result = CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("crd", "validate", "operator", "simulate", "apiserver", "up"):
        assert f" {name} " in result.output


def test_a_tool_whose_extra_is_missing_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = entry("apiserver", "thermostat_apiserver.not_installed:apiserver")
    monkeypatch.setattr(cli, "plugin_commands", lambda: {"apiserver": missing})
    result = CliRunner().invoke(cli.app, ["apiserver", "--port", "0"])
    assert result.exit_code == 2
    assert "pip install 'thermostat[apiserver]'" in result.output


def test_a_core_command_loads_no_tool() -> None:
    script = (
        "import sys; from thermostat.cli import app\n"
        "try: app(['crd'])\nexcept SystemExit: pass\n"
        "tools = ('thermostat_apiserver', 'thermostat_stack', 'kmock')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(tools))\n"
        "print(loaded, file=sys.stderr); sys.exit(1 if loaded else 0)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("operator", "runtime", "tools"))}
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert result.returncode == 0, result.stderr
