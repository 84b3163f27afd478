"""The CRD is generated from the models, structural, complete, and the committed copy is fresh."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from thermostat.api.crd import CRD_FILE_NAME, REGENERATE_COMMAND, render_crd_yaml, routedmodel_crd

pytestmark = pytest.mark.fast
ROOT = Path(__file__).resolve().parents[3]


def _nodes(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.get("properties", {}).items():
            out += _nodes(value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            out += _nodes(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += _nodes(node["additionalProperties"], f"{path}{{}}")
    return out


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = routedmodel_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crd_is_fresh() -> None:
    committed = (ROOT / "crds" / CRD_FILE_NAME).read_text()
    assert committed == render_crd_yaml(), f"crds/{CRD_FILE_NAME} is stale; regenerate it: {REGENERATE_COMMAND}"


def test_cli_prints_the_committed_crd() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "thermostat", "crd"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out == (ROOT / "crds" / CRD_FILE_NAME).read_text()


def test_schema_is_structural_without_json_schema_leftovers() -> None:
    text = json.dumps(_schema())
    for leftover in ('"$ref"', '"anyOf"', '"title"', '"$defs"', '"const"', '"null"'):
        assert leftover not in text, f"{leftover} left in the CRD schema"
    for path, node in _nodes(_schema()):
        assert "type" in node, f"{path or 'root'} has no type (structural schemas need one everywhere)"
        assert node.get("additionalProperties") is not False, f"{path}: additionalProperties false"
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(bound, True), bool), f"{path}: {bound} must be boolean in OpenAPI v3"


def test_every_spec_and_status_field_is_explained() -> None:
    for path, node in _nodes(_schema()["properties"]["spec"], "spec") + _nodes(
        _schema()["properties"]["status"], "status"
    ):
        if path.endswith(("[]", "{}")):
            continue  # list items and map values are explained by their field
        assert node.get("description"), f"{path} has no description for `kubectl explain`"


def test_unknown_fields_are_preserved_only_in_the_law_memory() -> None:
    preserved = [path for path, node in _nodes(_schema()) if node.get("x-kubernetes-preserve-unknown-fields")]
    assert preserved == [".status.memory.state"]


def test_names_columns_subresource_and_rules() -> None:
    crd = routedmodel_crd()
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["rm"]
    assert "thermostat" in crd["spec"]["names"]["categories"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Replicas", "Temperature", "Latency", "Power", "Ready", "Age"} <= columns
    rules = [r["rule"] for _, node in _nodes(_schema()) for r in node.get("x-kubernetes-validations", [])]
    assert "self.min <= self.max" in rules
    assert any("has(self.model) != has(self.targetRef)" in r for r in rules)


def test_routing_temperature_scale_is_open_at_zero_and_closed_at_one() -> None:
    quality = _schema()["properties"]["spec"]["properties"]["quality"]["properties"]
    floor = quality["minRoutingTemperature"]
    assert (floor["minimum"], floor["exclusiveMinimum"], floor["maximum"]) == (0, True, 1)
    assert "exclusiveMaximum" not in floor


def test_crd_passes_kubernetes_validate_strict() -> None:
    pytest.importorskip("kubernetes_validate")
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", str(ROOT / "crds" / CRD_FILE_NAME)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_crd_parses_as_one_document() -> None:
    docs = list(yaml.safe_load_all((ROOT / "crds" / CRD_FILE_NAME).read_text()))
    assert len(docs) == 1
    assert docs[0]["kind"] == "CustomResourceDefinition"
