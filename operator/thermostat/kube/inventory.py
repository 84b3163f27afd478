"""The operator's whole permission table, collected from what ``thermostat.kube`` declares.

Apart from :mod:`thermostat.kube.permissions` (which client and scalers import for ``requires``) so
that collecting the table imports the modules it reads without an import circle.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import yaml

from thermostat.kube import client, scalers
from thermostat.kube.permissions import DELEGATED, FRAMEWORK, REGENERATE_COMMAND, Permission, declared, rules


def kube_functions() -> list[Callable[..., object]]:
    """Every function and method of thermostat.kube that may declare permissions."""
    found: list[Callable[..., object]] = []
    for module in (client, scalers):
        for name, member in vars(module).items():
            if inspect.isfunction(member) and member.__module__ == module.__name__ and not name.startswith("_"):
                found.append(member)
    for name, member in vars(client.Kube).items():
        if inspect.isfunction(member) and not name.startswith("_"):
            found.append(member)
    return found


def table() -> list[Permission]:
    """The whole table: what kube/ declares, what Kopf needs, what is granted onward."""
    entries = [permission for function in kube_functions() for permission in declared(function)]
    return [*entries, *FRAMEWORK, *DELEGATED]


def rules_yaml() -> str:
    """The chart's ``files/operator-rules.yaml``: the table as rules, by scope."""
    entries = table()
    document = {"namespaced": rules(entries, "namespace"), "cluster": rules(entries, "cluster")}
    header = (
        "# Generated from thermostat.kube.permissions (the operator's declared API use); do not edit.\n"
        f"# Regenerate: {REGENERATE_COMMAND}\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=None)
