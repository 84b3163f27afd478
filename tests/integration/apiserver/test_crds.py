"""Any CRD works: created through kubectl, served at once, its objects validated from its own schema and CEL."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.integration]

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "default": 3},
                                    "limit": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {"rule": "self.size <= self.limit", "message": "size must not exceed limit"}
                                ],
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def _widget(**spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})


async def test_a_crd_applied_with_kubectl_is_served_and_validates(kubectl: Any) -> None:
    await kubectl("apply", "-f", "-", stdin=yaml.safe_dump(CRD))
    await kubectl("wait", "--for=condition=Established", "crd/widgets.example.dev", "--timeout=10s")
    refused = await kubectl("apply", "-f", "-", stdin=_widget(size=5, limit=2), check=False)
    assert refused.returncode != 0
    assert "size must not exceed limit" in refused.stderr
    await kubectl("apply", "-f", "-", stdin=_widget(limit=10))
    widget = json.loads((await kubectl("get", "wd", "w", "-o", "json")).stdout)
    assert widget["spec"]["size"] == 3  # the schema's default, applied by the server
    table = (await kubectl("get", "widgets")).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "AGE"]
    assert table[1].split()[:2] == ["w", "3"]
    await kubectl("delete", "crd", "widgets.example.dev")
    gone = await kubectl("get", "widgets", check=False)
    assert gone.returncode != 0
