"""Cross-field rules written once, enforced twice: as CEL in the CRD and in the pydantic models.

A Kubernetes API server evaluates a CRD's ``x-kubernetes-validations`` (CEL) on every write; the
operator and ``thermostat validate`` validate the same objects with pydantic. Each rule below carries
its CEL text, the Python predicate that means the same, and the one message both report, so a user
reads the same words whichever gate refused the object. The property tests check that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


@dataclass(frozen=True)
class CelRule:
    """One cross-field rule: CEL for the API server, a predicate for Python, one message for both."""

    rule: str
    message: str
    check: Callable[[Any], bool]
    # Where the server reports the problem, relative to the object carrying the rule (e.g. ".min").
    field_path: str | None = None

    def as_crd(self) -> dict[str, str]:
        """The ``x-kubernetes-validations`` entry for this rule."""
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


class RuleCheckedModel(BaseModel):
    """Base for models with cross-field rules: adds them to the JSON schema and checks them."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.cel_rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [rule.as_crd() for rule in cls.cel_rules]
        return schema

    @model_validator(mode="after")
    def _check_cel_rules(self) -> RuleCheckedModel:
        broken = [rule.message for rule in self.cel_rules if not rule.check(self)]
        if broken:
            raise ValueError("; ".join(broken))
        return self
