"""A WSD request, the checks every request passes (context budget, vocabulary), and what a
run produces (the answer and its report)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Annotated

from pydantic import Field

from wsd_engine.answer_logprobs import AnswerLogprob, ScoredToken
from wsd_engine.config import Role, WSDSettings
from wsd_engine.engines.engine import FinishReason, SamplingSettings
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


def check_vocabulary(token_ids: Iterable[int], vocab_size: int, model_id: str, param: str) -> None:
    """Token ids a request names must be the model's: a RequestError names the first one
    outside its vocabulary."""
    outside = next((token for token in token_ids if not 0 <= token < vocab_size), None)
    if outside is not None:
        raise RequestError(
            f"{param}: token id {outside} is outside {model_id}'s vocabulary "
            f"(0 to {vocab_size - 1})",
            param=param,
        )


@dataclass(frozen=True)
class WSDRequest:
    """One chat completion to answer with Weak-to-Strong Decoding."""

    request_id: str  # engine request ids start with it (`<id>-pilot`, `<id>-score-3`, ...)
    messages: tuple[Message, ...]
    max_tokens: int | None = None  # None: the rest of the context
    settings: WSDSettings = field(default_factory=WSDSettings)
    # how the client asked tokens to be picked; `sampling.py` derives each engine's share
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    stop: tuple[str, ...] = ()  # matched on the whole answer, across the pilot-to-base seam
    return_scores: bool = False  # add the base model's scores of the draft to `wsd`
    # the request's scoring passes and continuation share prefix-cache blocks with each other
    # only (docs/method.md); unique even when clients reuse request ids
    cache_salt: str = field(default_factory=lambda: uuid.uuid4().hex)

    def for_choice(self, index: int, num_choices: int) -> WSDRequest:
        """The request for choice `index` of `num_choices`: its own ids and, when seeded, its
        own seed."""
        if num_choices == 1:
            return self
        return replace(
            self,
            request_id=f"{self.request_id}-{index}",
            sampling=self.sampling.for_choice(index),
            cache_salt=f"{self.cache_salt}-{index}",
        )


@dataclass(kw_only=True)
class RunReport:
    """What one WSD run says about itself: where the answer switched from the pilot's draft
    to the base model, and when. With the stream's timings as sent it makes the response's
    `wsd` object (`server/responses.py`, `WSDInfo`)."""

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
    pilot_pauses: Annotated[
        int,
        Field(
            description="Times the pilot waited for the checks to catch up (0 unless the "
            "server sets `wsd.pilot_max_lead`)."
        ),
    ] = 0
    draft_tokens: Annotated[
        int, Field(description="Draft length in base tokens when the switch came.")
    ] = 0
    prefix_tokens: Annotated[
        int, Field(description="Answer tokens taken from the draft (base tokens).")
    ] = 0
    prefix_chars: Annotated[int, Field(description="Answer characters written by the pilot.")] = 0
    time_to_switch_s: Annotated[
        float | None, Field(description="Request start to the switch decision.")
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


# `wsd` fields left out of a response when null (they only appear when asked for).
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
    report: RunReport
    logprobs: list[AnswerLogprob] | None = None  # when the request asks for them

    def tokens_by_role(self) -> dict[Role, tuple[int, int]]:
        """(prompt, generated) tokens each engine handled for the answer."""
        return {
            Role.PILOT: (self.num_pilot_prompt_tokens, self.report.pilot_tokens),
            Role.BASE: (
                self.num_prompt_tokens,
                max(0, self.num_completion_tokens - self.report.prefix_tokens),
            ),
        }
