"""The chart's PrometheusRule and dashboard expressions: valid PromQL for promtool (Debian's
prometheus ships it), and the alerts fire when, and only when, they should (``promtool test rules``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chart_support import ALL_ON, CHART, REPO, find, render

pytestmark = pytest.mark.fast
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def rules_file(directory: Path) -> Path:
    (rule,) = find(render(ALL_ON), "PrometheusRule")
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def dashboard_expressions() -> list[str]:
    """Every panel query with Grafana's variables filled as an instant query would have them."""
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return [
        e.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$routedmodel", ".*") for e in exprs
    ]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    result = promtool("check", "rules", str(rules_file(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_as_their_unit_tests_say(tmp_path: Path) -> None:
    rules_file(tmp_path)
    shutil.copy(REPO / "tests" / "data" / "promtool" / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    result = promtool("test", "rules", str(tmp_path / "alerts_test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    records = [{"record": f"dashboard:panel_{i}", "expr": e} for i, e in enumerate(dashboard_expressions())]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_a_broken_expression(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "a:b", "expr": "sum(rate(x[5m])"}]}]})
    )
    assert promtool("check", "rules", str(path)).returncode != 0
