"""OpenAI request bodies (and vLLM's tokenizer requests): each owns its checks and its
translation into engine settings. The response bodies are in `server/responses.py`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from server.response_format import ResponseFormat
from wsd_engine.config import DraftMaxTokens, Threshold, Window, WSDSettings
from wsd_engine.engines.engine import SamplingSettings, StructuredOutput
from wsd_engine.request import RequestError, WSDRequest, check_vocabulary
from wsd_engine.templates import Message, MessageRole

MAX_N = 16
MAX_STOP_STRINGS = 4  # OpenAI's limit
MAX_STOP_CHARS = 1000
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # what vLLM (a 64-bit generator seed) accepts
MAX_COMPLETION_LOGPROBS = 5  # OpenAI's limit for /v1/completions
MAX_TOP_LOGPROBS = 20  # OpenAI's limit for chat
MAX_LOGIT_BIAS = 300  # OpenAI's limit
MAX_STOP_TOKEN_IDS = 300
_ROLE_ALIASES = {"developer": MessageRole.SYSTEM}


class _Lenient(BaseModel):
    """Unknown fields are accepted and ignored, as OpenAI clients send many."""

    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ChatMessage(_Lenient):
    role: str
    content: str | list[TextPart] | None = None
    name: str | None = None

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in {r.value for r in MessageRole} and role not in _ROLE_ALIASES:
            raise ValueError(
                f"unknown role '{role}'; expected one of system, developer, user, assistant"
            )
        return role

    def to_message(self) -> Message:
        """The engine-side message: role normalised, text parts joined."""
        role = _ROLE_ALIASES.get(self.role) or MessageRole(self.role)
        if isinstance(self.content, list):
            text = "".join(part.text for part in self.content)
        else:
            text = self.content or ""
        return Message(role=role, content=text)


class StreamOptions(_Lenient):
    include_usage: bool = False


class WSDExtension(_Lenient):
    """The request's `wsd` extension (extra body field): the method's settings for this
    request, each defaulting to the server's, and what to add to the response."""

    threshold: Threshold | None = None
    window: Window | None = None
    draft_max_tokens: DraftMaxTokens | None = None
    return_scores: bool = Field(
        default=False,
        description="Add the base model's scores of the draft (`wsd.scored_tokens`).",
    )

    def settings(self, defaults: WSDSettings) -> WSDSettings:
        """The server's defaults with this request's overrides."""
        overrides = self.model_dump(
            include={"threshold", "window", "draft_max_tokens"}, exclude_none=True
        )
        return defaults.model_copy(update=overrides)


StopField = Annotated[str | list[str] | None, Field(default=None)]


# Fields of OpenAI's API that only inform (logging, storage, routing on OpenAI's side): accepted.
INFORMATIONAL_FIELDS = frozenset(
    {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
)
# Fields accepted only with the value that changes nothing, until they are implemented.
NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "tools": ([],),
    "tool_choice": ("none",),
    "parallel_tool_calls": (True, False),  # without tools it means nothing
    "modalities": (["text"],),
}
_NO_TOOLS = (
    "tool calling is not supported by this server: no vLLM tool parser fits the embedded models "
    "(SmolLM2-135M-Instruct's chat template has no tools, Gemma-3-270m is a pretrained base "
    "model)"
)
# Why a refused field is refused, where there is more to say than "not supported".
REFUSAL_REASONS = {"tools": _NO_TOOLS, "tool_choice": _NO_TOOLS, "functions": _NO_TOOLS}


def refuse_extra_fields(
    extra: dict[str, Any],
    neutral: dict[str, tuple[Any, ...]],
    reasons: dict[str, str],
) -> None:
    """Refuse the first field of a body's extra fields that neither only informs nor has a
    value that changes nothing (`neutral`), with its reason where there is one."""
    for name, value in extra.items():
        if name in INFORMATIONAL_FIELDS:
            continue
        if name in neutral and value in neutral[name]:
            continue
        reason = reasons.get(name, "not supported by this server")
        raise RequestError(
            f"{name}: {reason}; send the request without it "
            "(the supported fields are listed in docs/api.md)",
            param=name,
            code="unsupported_field",
        )


class GenerationRequest(BaseModel):
    """Fields chat and text completions share. A field the server does not implement is
    refused (`refuse_unsupported`), never silently ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)
    stop: StopField = None
    n: int = Field(default=1, ge=1, le=MAX_N)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    repetition_penalty: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    top_k: int | None = Field(default=None, ge=-1, description="vLLM's: 0 or -1 turn it off")
    min_p: float | None = Field(default=None, ge=0, le=1)
    logit_bias: dict[str, float] | None = Field(
        default=None, description="token id -> bias in [-100, 100] (for wsd: base token ids)"
    )
    stop_token_ids: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, max_length=MAX_STOP_TOKEN_IDS
    )
    ignore_eos: bool = False
    min_tokens: int = Field(default=0, ge=0)
    response_format: ResponseFormat | None = None

    @field_validator("logit_bias")
    @classmethod
    def _bounded_bias(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        if not bias:
            return bias
        if len(bias) > MAX_LOGIT_BIAS:
            raise ValueError(f"at most {MAX_LOGIT_BIAS} entries, got {len(bias)}")
        for key, value in bias.items():
            if not key.isdigit():
                raise ValueError(f"keys must be token ids, got '{key}'")
            if not -100 <= value <= 100:
                raise ValueError(f"biases must be in [-100, 100], got {value} for {key}")
        return bias

    @field_validator("stop")
    @classmethod
    def _bounded_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings, got {len(stops)}")
        for text in stops:
            if not text:
                raise ValueError("stop strings must not be empty")
            if len(text) > MAX_STOP_CHARS:
                raise ValueError(f"a stop string may have at most {MAX_STOP_CHARS} characters")
        return stop

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> GenerationRequest:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options: only allowed when stream is true")
        if self.seed is not None and self.seed + self.n - 1 > SEED_MAX:
            # choice i samples with seed + i
            raise ValueError(f"seed: at most {SEED_MAX - self.n + 1} with n={self.n}")
        return self

    def refuse_unsupported(self) -> None:
        """Refuse the first field the server does not implement, naming it."""
        refuse_extra_fields(self.model_extra or {}, NEUTRAL_VALUES, REFUSAL_REASONS)

    def check_token_ids(self, vocab_size: int, model_id: str) -> None:
        """logit_bias keys and stop_token_ids must be the model's token ids."""
        bias_ids = [int(key) for key in self.logit_bias or {}]
        check_vocabulary(bias_ids, vocab_size, model_id, param="logit_bias")
        check_vocabulary(self.stop_token_ids or [], vocab_size, model_id, param="stop_token_ids")

    def check_min_tokens(self, max_tokens: int) -> None:
        """min_tokens cannot exceed the tokens the answer may have."""
        if self.min_tokens > max_tokens:
            raise RequestError(
                f"min_tokens: {self.min_tokens} is more than max_tokens ({max_tokens})",
                param="min_tokens",
            )

    def structured_output(self) -> StructuredOutput | None:
        """The output constraint `response_format` asks for, if any."""
        return self.response_format.structured_output() if self.response_format else None

    def stop_strings(self) -> tuple[str, ...]:
        """Stop strings as a tuple (a single string becomes one stop)."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def sampling(
        self, *, default_temperature: float, num_logprobs: int | None = None
    ) -> SamplingSettings:
        """How the client asked tokens to be picked (the served model's default temperature
        where it gave none)."""
        return SamplingSettings(
            temperature=default_temperature if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
            num_logprobs=num_logprobs,
            ignore_eos=self.ignore_eos,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            repetition_penalty=1.0 if self.repetition_penalty is None else self.repetition_penalty,
            top_k=self.top_k or 0,
            min_p=self.min_p or 0.0,
            logit_bias=tuple((int(k), v) for k, v in (self.logit_bias or {}).items()),
            stop_token_ids=tuple(self.stop_token_ids or ()),
            min_tokens=self.min_tokens,
            structured=self.structured_output(),
        )

    @property
    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(GenerationRequest):
    messages: list[ChatMessage]
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    wsd: WSDExtension | None = None

    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not messages:
            raise ValueError("messages must contain at least one message")
        return messages

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs: requires logprobs to be true")
        return self

    def requested_max_tokens(self) -> int | None:
        """max_completion_tokens, or the older max_tokens."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def num_top_logprobs(self) -> int | None:
        """Alternatives per token when logprobs are asked for, else None."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def engine_messages(self) -> tuple[Message, ...]:
        """The messages as the templates take them."""
        return tuple(m.to_message() for m in self.messages)

    def to_wsd_request(
        self, request_id: str, defaults: WSDSettings, default_temperature: float
    ) -> WSDRequest:
        """The orchestrator's request: the method's settings are the server's defaults
        overridden by the `wsd` extension."""
        extension = self.wsd or WSDExtension()
        return WSDRequest(
            request_id=request_id,
            messages=self.engine_messages(),
            max_tokens=self.requested_max_tokens(),
            settings=extension.settings(defaults),
            sampling=self.sampling(
                default_temperature=default_temperature, num_logprobs=self.num_top_logprobs
            ),
            stop=self.stop_strings(),
            return_scores=extension.return_scores,
        )


class CompletionRequest(GenerationRequest):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=MAX_COMPLETION_LOGPROBS)
    echo: bool = False

    @field_validator("echo")
    @classmethod
    def _echo_not_supported(cls, echo: bool) -> bool:
        if echo:
            raise ValueError("echo is not supported by this server; send the request without it")
        return echo

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, prompt: Any) -> Any:
        if prompt == "" or prompt == [] or any(p == "" or p == [] for p in prompt):
            raise ValueError("prompt must not be empty")
        return prompt

    def prompts(self) -> list[str | list[int]]:
        """Each prompt of the batch, as text or token ids."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if all(isinstance(p, int) for p in prompt):
            return [list(prompt)]  # type: ignore[arg-type]
        return list(prompt)  # type: ignore[arg-type]


# -- /tokenize and /detokenize (vLLM's shapes) ---------------------------------------------


class TokenizeRequest(_Lenient):
    """vLLM's tokenize request, text (`prompt`) or chat (`messages`) form. The WSD model id
    (the default) tokenizes as the base model, whose tokens `usage` counts."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = Field(
        default=None, description="Add BOS and the like: default true for `prompt`."
    )
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _one_form(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give either prompt or messages")
        return self

    def refused_chat_option(self) -> str | None:
        """A chat-form option the server does not implement (it renders chat prompts one way,
        as its models see them), if the request sets one."""
        if self.messages is None:
            return None
        if not self.add_generation_prompt:
            return "add_generation_prompt"
        if self.continue_final_message:
            return "continue_final_message"
        if self.add_special_tokens:
            return "add_special_tokens"
        return None


class DetokenizeRequest(_Lenient):
    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0)]]
