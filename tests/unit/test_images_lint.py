"""The container images' sources, checked without building: hadolint on every Dockerfile, shellcheck
on the build script, the rules a Kubernetes pod relies on (a numeric non-root USER, a base pinned by
build argument, no HEALTHCHECK), and the image names against the chart and the README.

The images themselves are built and run by ``tests/images`` (marker ``image``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "images").glob("*.Dockerfile"))
APP_DOCKERFILES = [ROOT / "images" / "operator.Dockerfile", ROOT / "images" / "runtime.Dockerfile"]
# The names the chart's defaults use (charts/thermostat/values.yaml) and the README documents.
IMAGE_NAMES = ["ghcr.io/thermostat-dev/operator:0.1.0", "ghcr.io/thermostat-dev/runtime:0.1.0"]

pytestmark = pytest.mark.fast


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined and comments dropped."""
    text = dockerfile.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


def test_dockerfiles_are_hadolint_clean() -> None:
    assert len(DOCKERFILES) >= 3, DOCKERFILES
    result = subprocess.run([tool("hadolint"), "--no-color", *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_scripts_are_shellcheck_clean() -> None:
    scripts = [ROOT / "images" / "build.sh", ROOT / ".ci" / "run", *sorted((ROOT / "scripts").glob("*.sh"))]
    result = subprocess.run([tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", APP_DOCKERFILES, ids=lambda path: path.stem)
def test_images_run_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    users = [rest for keyword, rest in final_stage(dockerfile) if keyword == "USER"]
    assert users, f"{dockerfile.name}: the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    # runAsNonRoot can only be checked by the kubelet against a numeric user.
    assert uid.isdigit(), users[-1]
    assert int(uid) != 0, users[-1]
    assert not gid or gid.isdigit(), users[-1]
    assert not gid or int(gid) != 0, users[-1]


@pytest.mark.parametrize("dockerfile", APP_DOCKERFILES, ids=lambda path: path.stem)
def test_images_are_multi_stage_on_a_pinned_base_without_healthcheck(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    keywords = [keyword for keyword, _ in steps]
    assert "HEALTHCHECK" not in keywords, "Kubernetes probes check health; a HEALTHCHECK is ignored there"
    assert keywords.count("FROM") >= 2, "multi-stage: the build stage's pip and wheels stay out of the image"
    assert keywords[0] == "ARG", "the base is a build argument declared before the first FROM"
    name, _, default = steps[0][1].partition("=")
    assert name == "BASE", steps[0]
    # A full version in the tag (python:3.11.14-...), never a floating one.
    assert re.search(r":\d+\.\d+\.\d+-", default), f"BASE default {default!r} is not pinned to a full version"
    assert steps[1] == ("FROM", "${BASE} AS python"), steps[1]


def test_build_script_names_the_images_the_chart_and_readme_use() -> None:
    result = subprocess.run([str(ROOT / "images" / "build.sh"), "tags"], capture_output=True, text=True, check=True)
    assert result.stdout.split() == IMAGE_NAMES
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in IMAGE_NAMES), "the README shows how to build both images"


def test_chart_defaults_name_the_images_built_here() -> None:
    values_file = ROOT / "charts" / "thermostat" / "values.yaml"
    chart_file = ROOT / "charts" / "thermostat" / "Chart.yaml"
    text = values_file.read_text(encoding="utf-8")
    chart = yaml.safe_load(chart_file.read_text(encoding="utf-8"))
    assert str(chart["appVersion"]) == IMAGE_NAMES[0].rsplit(":", 1)[1], "the chart's appVersion is the image tag"
    operator_image, runtime_image = sorted(IMAGE_NAMES, key=lambda n: "runtime" in n)
    # The registry may be a value of its own (registry: ghcr.io, repository: thermostat-dev/operator).
    registry, repository = operator_image.rsplit(":", 1)[0].split("/", 1)
    assert registry in text, f"charts/thermostat/values.yaml does not default to the registry {registry}"
    assert repository in text, f"charts/thermostat/values.yaml does not default to {repository}"
    # The runtime image is named by each RoutedModel (spec.model.image), so the examples carry it.
    texts = [p.read_text(encoding="utf-8") for p in (ROOT / "examples").glob("*.yaml")]
    images = [text for text in texts if "image:" in text]
    assert images, "no example names a runtime image"
    assert all(runtime_image in text for text in images), f"an example names another image than {runtime_image}"
