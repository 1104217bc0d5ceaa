"""The OpenAI Responses API's request body, and its translation into a chat request: the
same models, checks and limits as chat, one answer per response."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from server.protocol import (
    NEUTRAL_VALUES,
    REFUSAL_REASONS,
    ChatCompletionRequest,
    WSDExtension,
    refuse_extra_fields,
)
from server.response_format import JSONSchemaSpec, ResponseFormat
from wsd_engine.request import RequestError

MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512  # OpenAI's limits
ROLES = ("user", "system", "developer", "assistant")
# Fields the Responses API has that only inform, or that change nothing without tools.
RESPONSES_NEUTRAL: dict[str, tuple[Any, ...]] = {
    **NEUTRAL_VALUES,
    "tool_choice": ("none", "auto"),  # no tools: nothing to call either way
    "truncation": ("disabled", None),
    "background": (False, None),
    "include": ([], None),
    "reasoning": (None,),
    "top_logprobs": (0, None),
    "stream_options": (None, {}, {"include_obfuscation": False}, {"include_obfuscation": True}),
}
RESPONSES_REASONS = {
    **REFUSAL_REASONS,
    "truncation": "only 'disabled' is supported: a request that does not fit the context is "
    "refused with context_length_exceeded",
    "background": "background responses are not supported",
    "include": "no extra output can be included",
    "reasoning": "the models served here do not reason",
    "prompt": "prompt templates are not supported",
    "conversation": "conversations are not supported; continue with previous_response_id",
    "top_logprobs": "logprobs are not supported on /v1/responses; use /v1/chat/completions",
}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    """Text content of an input message: `input_text`, or `output_text` in assistant history."""

    type: Literal["input_text", "output_text", "text"]
    text: str


class InputMessage(_Lenient):
    """One message item of `input` (an earlier response's output message is one too)."""

    type: Literal["message"] = "message"
    role: str
    content: str | list[ContentPart]
    id: str | None = None

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role '{role}'; expected one of {', '.join(ROLES)}")
        return role

    def text(self) -> str:
        """The message's text, its parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def chat_message(self) -> dict[str, str]:
        """The message as chat takes it (developer instructions are system messages there)."""
        return {"role": self.role, "content": self.text()}


class TextFormat(_Lenient):
    """`text.format`: free text, any JSON object, or JSON following a schema (the Responses
    API puts the schema's fields beside `type`)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> TextFormat:
        if self.type == "json_schema" and (self.name is None or self.json_schema is None):
            raise ValueError("json_schema needs name and schema")
        return self

    def response_format(self) -> ResponseFormat:
        """Chat's `response_format` for the same constraint."""
        if self.type != "json_schema":
            return ResponseFormat(type=self.type)
        fields: dict[str, Any] = {"name": self.name, "schema": self.json_schema}
        fields.update(description=self.description, strict=self.strict)
        spec = JSONSchemaSpec.model_validate(fields)
        return ResponseFormat(type="json_schema", json_schema=spec)

    def echoed(self) -> dict[str, Any]:
        """The format as the response repeats it."""
        return self.model_dump(by_alias=True, exclude_none=True)


class TextConfig(_Lenient):
    format: TextFormat = Field(default_factory=TextFormat)


class ResponsesRequest(BaseModel):
    """`POST /v1/responses`. A field the server does not implement is refused by name."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[InputMessage]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stream: bool = False
    text: TextConfig = Field(default_factory=TextConfig)
    metadata: dict[str, str] | None = None
    user: str | None = None
    store: bool = True
    previous_response_id: str | None = None
    tools: list[Any] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    wsd: WSDExtension | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[InputMessage]) -> str | list[InputMessage]:
        if not value:
            raise ValueError("input must not be empty")
        return value

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, metadata: dict[str, str] | None) -> dict[str, str] | None:
        if metadata is None:
            return None
        if len(metadata) > MAX_METADATA_PAIRS:
            raise ValueError(f"at most {MAX_METADATA_PAIRS} pairs, got {len(metadata)}")
        for key, value in metadata.items():
            if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
                raise ValueError(
                    f"keys have at most {MAX_METADATA_KEY} characters and values "
                    f"{MAX_METADATA_VALUE} ('{key[:20]}' is longer)"
                )
        return metadata

    def refuse_unsupported(self) -> None:
        """Refuse the first field the server does not implement, naming it."""
        if self.tools:
            raise RequestError(
                f"tools: {RESPONSES_REASONS['tools']}; send the request without them",
                param="tools",
                code="unsupported_field",
            )
        refuse_extra_fields(self.model_extra or {}, RESPONSES_NEUTRAL, RESPONSES_REASONS)

    def input_messages(self) -> list[InputMessage]:
        """`input` as message items (a string is one user message)."""
        if isinstance(self.input, str):
            return [InputMessage(role="user", content=self.input)]
        return list(self.input)

    def to_chat(self, history: list[dict[str, str]]) -> ChatCompletionRequest:
        """The chat request with the same answer: the instructions first, then the earlier
        turns (`previous_response_id`), then this input."""
        messages = [] if self.instructions is None else [
            {"role": "system", "content": self.instructions}
        ]  # fmt: skip
        messages += history
        messages += [message.chat_message() for message in self.input_messages()]
        try:
            response_format = self.text.format.response_format()
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(["text.format", *(str(part) for part in first["loc"])])
            raise RequestError(f"{param}: {first['msg']}", param=param) from None
        fields: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_output_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "user": self.user,
            "response_format": response_format,
            "wsd": self.wsd,
        }
        try:
            return ChatCompletionRequest.model_validate(fields)
        except ValidationError as exc:  # a bound chat has and this body does not check
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or None
            raise RequestError(f"{field}: {first['msg']}", param=field) from None
