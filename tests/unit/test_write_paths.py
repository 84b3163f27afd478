"""Only ``thermostat.reconcile.apply`` writes to the cluster (the planned writes, Events and the one
status patch); every other operator module reads, plans or renders. Checked on the source, statically."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast
PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "thermostat"
# thermostat.kube defines the write methods; reconcile/apply is the one caller.
ALLOWED = {PACKAGE / "reconcile" / "apply.py"}
DEFINING = PACKAGE / "kube"
KUBE_WRITES = {"patch", "apply", "scale_deployment", "patch_routedmodel_status", "post_event", "mark_for_removal",
               "delete_owned_deployment"}  # fmt: skip
CLIENT_WRITE = re.compile(r"^(create|patch|replace|delete)_(namespaced_|collection_)?\w+$")


def write_calls(source: str) -> list[str]:
    """Names of the Kubernetes write methods a module's code calls."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):  # kube.patch(...), kube.core.create_namespaced_event(...)
            name = func.attr
            writes = name in KUBE_WRITES or CLIENT_WRITE.match(name)
        elif isinstance(func, ast.Name):  # mark_for_removal(...); a bare apply(...) is reconcile's own
            name = func.id
            writes = name == "mark_for_removal" or CLIENT_WRITE.match(name)
        else:
            continue
        if writes:
            found.append(f"{name} (line {node.lineno})")
    return found


def test_only_reconcile_apply_calls_kubernetes_write_methods() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in ALLOWED or DEFINING in path.parents:
            continue
        calls = write_calls(path.read_text(encoding="utf-8"))
        if calls:
            offenders[str(path.relative_to(PACKAGE))] = calls
    assert offenders == {}, "write through thermostat.reconcile.apply instead"


def test_the_check_sees_a_write_outside_apply() -> None:
    assert write_calls("def run(kube):\n    kube.patch('ConfigMap', 'ns', 'n', {})\n") == ["patch (line 2)"]
    assert write_calls("kube.core.create_namespaced_event('ns', {})") == ["create_namespaced_event (line 1)"]
    assert write_calls("kube.read('Deployment', 'ns', 'n')") == []
