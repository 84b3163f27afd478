"""The `operator` extra installs what the operator runs and none of the test tools' dependencies.

Checked without the network: the extra's requirements are read from pyproject.toml (self-references
like ``thermostat[sim]`` followed), then followed through the installed packages' own metadata with
their extras off, as pip would resolve them into a fresh environment.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
TOOL_DEPENDENCIES = {"kmock", "jsonpath-ng", "jsonpatch", "numpy", "matplotlib", "pandas"}
# jsonpatch aside: Kopf itself requires it.
HEAVY_TOOL_DEPENDENCIES = TOOL_DEPENDENCIES - {"jsonpatch"}

pytestmark = pytest.mark.fast


def project_requirements(extra: str) -> list[Requirement]:
    """The base dependencies plus one extra's, with this project's own extras expanded."""
    found: list[Requirement] = []
    pending = [Requirement(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"][extra]]
    while pending:
        requirement = pending.pop()
        if canonicalize_name(requirement.name) == canonicalize_name(PROJECT["name"]):
            for inner in requirement.extras:
                pending.extend(Requirement(r) for r in PROJECT["optional-dependencies"][inner])
        else:
            found.append(requirement)
    return found


def installed_closure(names: set[str]) -> set[str]:
    """Every distribution the given ones pull in, by their installed metadata, extras off."""
    seen: set[str] = set()
    pending = sorted(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            declared = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in declared:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def test_the_operator_extra_names_none_of_the_tools_dependencies() -> None:
    direct = {canonicalize_name(r.name) for r in project_requirements("operator")}
    assert direct.isdisjoint(TOOL_DEPENDENCIES), direct & TOOL_DEPENDENCIES


def test_nothing_the_operator_extra_pulls_in_brings_them_either() -> None:
    closure = installed_closure({r.name for r in project_requirements("operator")})
    assert closure.isdisjoint(HEAVY_TOOL_DEPENDENCIES), closure & HEAVY_TOOL_DEPENDENCIES


def test_prometheus_api_client_is_floored_where_numpy_pandas_and_matplotlib_became_extras() -> None:
    (client,) = [r for r in project_requirements("operator") if r.name == "prometheus-api-client"]
    floors = [Version(s.version) for s in client.specifier if s.operator in (">=", "==", "~=")]
    assert floors, "prometheus-api-client needs a floor"
    assert min(floors) >= Version("0.7.0"), "before 0.7.0 it requires numpy, pandas and matplotlib"


@pytest.mark.parametrize("extra", ["apiserver", "stack"])
def test_each_tool_has_its_extra_and_the_stack_takes_the_apiserver(extra: str) -> None:
    names = {canonicalize_name(r.name) for r in project_requirements(extra)}
    assert {"kmock", "jsonpath-ng"} <= names
