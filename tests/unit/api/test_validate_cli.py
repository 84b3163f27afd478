"""`thermostat validate` as a user runs it: examples pass, every kind of bad input is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast
ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

GOOD = """\
apiVersion: thermostat.dev/v1alpha1
kind: RoutedModel
metadata: {name: chat}
spec:
  model: {image: ghcr.io/example/runtime:1}
  slo: {quantile: 0.95, targetSeconds: 1.5}
  replicas: {min: 1, max: 4}
"""


def run_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thermostat", "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def write(tmp_path: Path, text: str, name: str = "rm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_there_are_at_least_three_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid(example: Path) -> None:
    result = run_validate(example)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_a_good_manifest_passes(tmp_path: Path) -> None:
    result = run_validate(write(tmp_path, GOOD))
    assert result.returncode == 0, result.stdout
    assert "RoutedModel/chat: valid" in result.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("slo: {quantile: 0.95, targetSeconds: 1.5}", "slo: {quantile: 0.95, targetSeconds: fast}"),
            ["spec.slo.targetSeconds", "expected number"],
        ),
        (("replicas: {min: 1, max: 4}", "replicas: {min: 1, max: '4'}"), ["spec.replicas.max", "expected integer"]),
        (("  slo: {quantile: 0.95, targetSeconds: 1.5}\n", ""), ["spec.slo", "required"]),
        (
            ("replicas: {min: 1, max: 4}", "replicas: {min: 5, max: 4}"),
            ["spec.replicas.min", "must not exceed replicas.max"],
        ),
        (("quantile: 0.95", "quantile: 1.5"), ["spec.slo.quantile", "allowed: (0, 1)"]),
        (("quantile: 0.95", "quantile: 0"), ["spec.slo.quantile", "out of range"]),
        (("  replicas:", "  budget: {powerWatts: 0}\n  replicas:"), ["spec.budget.powerWatts", "out of range"]),
        (("  replicas:", "  budget: {powerWatts: -100}\n  replicas:"), ["spec.budget.powerWatts", "out of range"]),
        (("  replicas:", "  budget: {priority: SLO}\n  replicas:"), ["spec.budget", "at least one limit"]),
        (("  replicas:", "  bogus: 1\n  replicas:"), ["spec", "unknown field(s) 'bogus'"]),
        (("{image: ghcr.io/example/runtime:1}", "{image: x, gpu: 1}"), ["spec.model", "unknown field(s) 'gpu'"]),
        (
            ("  replicas:", "  quality: {minRoutingTemperature: 0.8, maxRoutingTemperature: 0.5}\n  replicas:"),
            ["spec.quality.minRoutingTemperature", "must not exceed quality.maxRoutingTemperature"],
        ),
        (
            ("  replicas:", "  quality: {minRoutingTemperature: 1.2}\n  replicas:"),
            ["spec.quality.minRoutingTemperature", "allowed: (0, 1]"],
        ),
        (("  replicas:", "  mode: Auto\n  replicas:"), ["spec.mode", "allowed: Enforce, Recommend"]),
        (("  model: {image: ghcr.io/example/runtime:1}\n", ""), ["set exactly one of spec.model"]),
        (("  replicas:", "  targetRef: {name: existing}\n  replicas:"), ["set exactly one of spec.model"]),
        (
            ("  replicas:", "  behavior: {onMetricsUnavailable: {action: Replicas}}\n  replicas:"),
            ["onMetricsUnavailable.replicas is required"],
        ),
        (("metadata: {name: chat}", "metadata: {name: Chat_1}"), ["metadata.name", "not a valid name"]),
        (("metadata: {name: chat}", "metadata: {}"), ["metadata.name", "required"]),
    ],
)
def test_each_bad_input_is_refused_with_the_field_named(
    tmp_path: Path, change: tuple[str, str], expected: list[str]
) -> None:
    old, new = change
    assert old in GOOD
    result = run_validate(write(tmp_path, GOOD.replace(old, new, 1)))
    assert result.returncode == 1, result.stdout
    for fragment in expected:
        assert fragment in result.stdout, f"{fragment!r} not in:\n{result.stdout}"
    assert "Traceback" not in result.stdout + result.stderr


def test_another_kind_is_refused(tmp_path: Path) -> None:
    result = run_validate(write(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"))
    assert result.returncode == 1
    assert "not a RoutedModel" in result.stdout


def test_yaml_that_does_not_parse(tmp_path: Path) -> None:
    result = run_validate(write(tmp_path, "spec: [unclosed\n  slo: {\n"))
    assert result.returncode == 1
    assert "YAML does not parse at line" in result.stdout
    assert "Traceback" not in result.stderr


def test_empty_file(tmp_path: Path) -> None:
    result = run_validate(write(tmp_path, "\n"))
    assert result.returncode == 1
    assert "empty" in result.stdout


def test_missing_file(tmp_path: Path) -> None:
    result = run_validate(tmp_path / "nope.yaml")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_multi_document_file_reports_the_good_ones_valid(tmp_path: Path) -> None:
    bad = GOOD.replace("name: chat", "name: broken").replace("max: 4", "max: 0")
    other = GOOD.replace("name: chat", "name: second")
    result = run_validate(write(tmp_path, f"{GOOD}---\n{bad}---\n{other}"))
    assert result.returncode == 1
    assert "RoutedModel/chat: valid" in result.stdout
    assert "RoutedModel/second: valid" in result.stdout
    assert "RoutedModel/broken: 1 problem(s)" in result.stdout
    assert "spec.replicas.max" in result.stdout


def test_every_problem_of_a_document_is_listed(tmp_path: Path) -> None:
    text = GOOD.replace("quantile: 0.95", "quantile: 2").replace("min: 1, max: 4", "min: 9, max: 4")
    result = run_validate(write(tmp_path, text))
    assert "spec.slo.quantile" in result.stdout
    assert "spec.replicas.min" in result.stdout
