"""OpenAI's `response_format` and what it asks of an engine: free text, any JSON object, or
JSON following a schema (vLLM's structured outputs enforce the last two)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wsd_engine.engines.engine import StructuredKind, StructuredOutput


class JSONSchemaSpec(BaseModel):
    """OpenAI's `response_format.json_schema`. The schema is always enforced, `strict` or
    not (as vLLM does)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's `response_format`: free text, any JSON object, or JSON following a schema."""

    model_config = ConfigDict(extra="ignore")  # as OpenAI's other objects here

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required with type json_schema, and only there")
        return self

    def structured_output(self) -> StructuredOutput | None:
        """The engine's constraint (None for free text)."""
        if self.json_schema is not None:
            schema = json.dumps(self.json_schema.json_schema, ensure_ascii=False)
            return StructuredOutput(StructuredKind.JSON_SCHEMA, schema)
        if self.type == "json_object":
            return StructuredOutput(StructuredKind.JSON_OBJECT)
        return None
