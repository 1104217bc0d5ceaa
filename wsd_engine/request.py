"""A WSD request, its context budget, and what it produces (the answer and its `wsd` info)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import Field

from wsd_engine.answer_logprobs import AnswerLogprob, ScoredToken
from wsd_engine.config import Role, WSDConfig
from wsd_engine.engines.protocol import FinishReason
from wsd_engine.switch_rule import SwitchReason
from wsd_engine.templates import Message


class RequestError(ValueError):
    """A request cannot be served as given; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class ContextLengthExceeded(RequestError):
    """Prompt plus requested tokens do not fit a model's context."""

    def __init__(self, message: str, param: str = "messages") -> None:
        super().__init__(message, param=param, code="context_length_exceeded")


def completion_budget(
    prompt_len: int, requested: int | None, context: int, param: str = "messages"
) -> int:
    """The completion's max_tokens: the requested count if it fits the context, else an error;
    when nothing was requested, the rest of the context. `param` names the prompt field."""
    if requested is None:
        if prompt_len >= context:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {context} tokens. However, your "
                f"{param} resulted in {prompt_len} tokens. Please reduce the length of the "
                f"{param}.",
                param=param,
            )
        return context - prompt_len
    if prompt_len + requested > context:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_len + requested} tokens ({prompt_len} in the {param}, {requested} in the "
            f"completion). Please reduce the length of the {param} or completion.",
            param=param,
        )
    return requested


@dataclass(frozen=True)
class WSDParams:
    """Method settings for one request (server defaults unless the request overrides them)."""

    threshold: float = 0.8
    window: int = 6
    draft_max_tokens: int = 512
    continue_after_draft_end: bool = True

    @classmethod
    def from_config(
        cls,
        config: WSDConfig,
        *,
        threshold: float | None = None,
        window: int | None = None,
        draft_max_tokens: int | None = None,
    ) -> WSDParams:
        """Server defaults with per-request overrides (None keeps the default)."""
        return cls(
            threshold=config.threshold if threshold is None else threshold,
            window=config.window if window is None else window,
            draft_max_tokens=(
                config.draft_max_tokens if draft_max_tokens is None else draft_max_tokens
            ),
            continue_after_draft_end=config.continue_after_draft_end,
        )


@dataclass(frozen=True)
class SamplingOptions:
    """Sampling settings beyond temperature and top_p, and which WSD engine takes each: the
    ones that shape a distribution go to both engines, the ones naming token ids (base ids,
    as `usage` counts) to the base model only."""

    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    ignore_eos: bool = False
    logit_bias: tuple[tuple[int, float], ...] = ()
    stop_token_ids: tuple[int, ...] = ()

    def for_role(self, role: Role) -> dict[str, Any]:
        """SamplingSettings fields for the engine playing `role`."""
        settings: dict[str, Any] = {
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "repetition_penalty": self.repetition_penalty,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "ignore_eos": self.ignore_eos,
        }
        if role is Role.BASE:
            settings["logit_bias"] = self.logit_bias
            settings["stop_token_ids"] = self.stop_token_ids
        return settings


@dataclass(frozen=True)
class WSDRequest:
    """One chat completion to answer with Weak-to-Strong Decoding."""

    request_id: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None  # None: the rest of the context
    params: WSDParams = field(default_factory=WSDParams)
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    options: SamplingOptions = field(default_factory=SamplingOptions)
    min_tokens: int = 0  # answer tokens before the base model may end the answer
    num_logprobs: int | None = None  # alternatives per token when logprobs are asked for
    return_scores: bool = False  # add the base model's scores of the draft to `wsd`

    def engine_seed(self, role: Role) -> int | None:
        """A seed of its own for each engine, derived from the request's seed."""
        if self.seed is None:
            return None
        digest = hashlib.sha256(f"{self.seed}:{role.value}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    def for_choice(self, index: int) -> WSDRequest:
        """The request for choice `index` of `n`: its own id and, when seeded, its own seed."""
        seed = None if self.seed is None else self.seed + index
        return replace(self, request_id=f"{self.request_id}-{index}", seed=seed)


@dataclass(kw_only=True)
class WSDInfo:
    """Where and when an answer switched from the pilot's draft to the base model.

    The response's `wsd` object is this dataclass, field for field.
    """

    accept_index: Annotated[
        int | None,
        Field(description="Last draft token kept, in base tokens (null: no switch happened)."),
    ] = None
    reason: Annotated[
        SwitchReason | None,
        Field(
            description="threshold, draft_end or draft_limit; null when the answer ended "
            "inside the draft (max_tokens or a stop string)."
        ),
    ] = None
    pilot_tokens: Annotated[int, Field(description="Pilot tokens drafted.")] = 0
    pilot_tokens_wasted: Annotated[
        int, Field(description="Pilot tokens drafted beyond the kept prefix.")
    ] = 0
    draft_tokens: Annotated[
        int, Field(description="Draft length in base tokens when the switch came.")
    ] = 0
    prefix_tokens: Annotated[
        int, Field(description="Answer tokens taken from the draft (base tokens).")
    ] = 0
    prefix_chars: Annotated[int, Field(description="Answer characters written by the pilot.")] = 0
    time_to_first_token_s: Annotated[
        float | None, Field(description="Request start to the first answer text.")
    ] = None
    time_to_switch_s: Annotated[
        float | None, Field(description="Request start to the switch decision.")
    ] = None
    switch_latency_s: Annotated[
        float | None,
        Field(
            description="The stream's stall at the handoff: the longer of the gaps into the "
            "first and into the second chunk of base-model text, measured where the chunks "
            "are sent (null: no base text)."
        ),
    ] = None
    decision_lag_s: Annotated[
        float | None,
        Field(
            description="From the pilot producing the last token of the window that passed "
            "to the switch decision (null unless the reason is threshold)."
        ),
    ] = None
    handoff_s: Annotated[
        float | None,
        Field(description="Switch decision to the first base-model token being available."),
    ] = None
    draft_lag_s: Annotated[
        float | None,
        Field(
            description="Median time from the pilot producing a draft token to its text "
            "being sent, over the draft tokens the answer kept."
        ),
    ] = None
    max_stream_gap_s: Annotated[
        float | None,
        Field(description="Longest gap between two consecutive chunks of answer text."),
    ] = None
    threshold: Annotated[float, Field(description="The threshold the request ran with.")]
    window: Annotated[int, Field(description="The window the request ran with.")]
    logprobs_source: Annotated[
        list[Role] | None,
        Field(
            description="With logprobs: the model that produced each logprobs entry, in order "
            "(pilot entries carry the pilot's distribution, base entries the base model's)."
        ),
    ] = None
    scored_tokens: Annotated[
        list[ScoredToken] | None,
        Field(
            description='With `"wsd": {"return_scores": true}`: the draft tokens the base '
            "model scored, up to the switch (base tokenization), each with its base "
            "probability and the geometric mean of the window ending at it."
        ),
    ] = None


# WSDInfo fields left out of a response when null (they only appear when asked for).
WSD_OPT_IN_FIELDS = ("logprobs_source", "scored_tokens")


@dataclass
class TextDelta:
    """A piece of the answer that is final and may be streamed."""

    text: str
    source: Role  # the model that wrote it (BASE once base text is in the piece)
    pilot_times: tuple[float, ...] = ()  # when the pilot produced the draft tokens it completes


@dataclass
class WSDOutcome:
    """The finished answer with its accounting (token counts in the base tokenization)."""

    text: str
    finish_reason: FinishReason
    num_prompt_tokens: int
    num_completion_tokens: int
    num_pilot_prompt_tokens: int
    wsd: WSDInfo
    logprobs: list[AnswerLogprob] | None = None  # when the request asks for them

    def tokens_by_role(self) -> dict[Role, tuple[int, int]]:
        """(prompt, generated) tokens each engine handled for the answer."""
        return {
            Role.PILOT: (self.num_pilot_prompt_tokens, self.wsd.pilot_tokens),
            Role.BASE: (
                self.num_prompt_tokens,
                max(0, self.num_completion_tokens - self.wsd.prefix_tokens),
            ),
        }
