"""The operator's permission table: every kube function that talks to the API declares what it uses.

A kube method added without ``@requires`` fails here (declare it, or list it as making no API call);
the integration suite then checks the declarations against the requests the operator really sends.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from thermostat.kube import inventory
from thermostat.kube.client import KINDS
from thermostat.kube.inventory import kube_functions
from thermostat.kube.permissions import OWNED_RESOURCES, Permission, declared, requires, rules

pytestmark = pytest.mark.fast
# Functions of thermostat.kube that make no API call themselves (they build a client or retry one).
NO_API_CALL = {"load_api_client", "retry_conflicts"}


def test_every_kube_function_that_calls_the_api_declares_its_permissions() -> None:
    undeclared = [f.__qualname__ for f in kube_functions() if not declared(f) and f.__name__ not in NO_API_CALL]
    assert not undeclared, f"declare with thermostat.kube.permissions.requires(...): {undeclared}"


def test_the_check_sees_a_new_undeclared_method(monkeypatch: pytest.MonkeyPatch) -> None:
    from thermostat.kube.client import Kube

    def delete_everything(self: Kube) -> None:
        """A new API call nobody declared."""

    monkeypatch.setattr(Kube, "delete_everything", delete_everything, raising=False)
    assert "delete_everything" in [f.__name__ for f in kube_functions() if not declared(f)]


def test_owned_kinds_are_the_kinds_kube_applies() -> None:
    assert set(OWNED_RESOURCES) == set(KINDS)


def test_rules_merge_verbs_per_resource_and_keep_subresources_apart() -> None:
    table = [
        Permission("apps", "deployments", ("get",), "read"),
        Permission("apps", "deployments", ("patch", "get"), "write"),
        Permission("apps", "deployments", ("patch",), "scale", subresource="scale"),
        Permission("x.io", "things", ("list",), "cluster thing", scope="cluster"),
    ]
    assert rules(table, "namespace") == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
    ]
    assert rules(table, "cluster") == [{"apiGroups": ["x.io"], "resources": ["things"], "verbs": ["list"]}]


def test_requires_accumulates_declarations() -> None:
    first, second = Permission("", "pods", ("list",), "a"), Permission("", "pods", ("patch",), "b")

    @requires(first)
    @requires(second)
    def both() -> None:
        """Declares two permissions."""

    assert set(declared(both)) == {first, second}


def test_the_cli_prints_the_rules_file() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "thermostat", "rbac"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out == inventory.rules_yaml()
    document = yaml.safe_load(out)
    assert {"namespaced", "cluster"} == set(document)
