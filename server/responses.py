"""OpenAI response bodies (and vLLM's tokenizer responses), as the server sends them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, fields
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from wsd_engine.request import RunReport
from wsd_engine.timeline import StreamTimeline


def new_id(prefix: str, separator: str = "-") -> str:
    """An OpenAI-style object id: `chatcmpl-…`, `cmpl-…`; the Responses API's are `resp_…`,
    `msg_…`."""
    return f"{prefix}{separator}{uuid.uuid4().hex}"


def now() -> int:
    """Unix seconds, as OpenAI's `created`."""
    return int(time.time())


@dataclass(kw_only=True)
class WSDInfo(RunReport):
    """The `wsd` object of a response: the run's report and the stream's timings as sent,
    put together once, when the choice ends (the metrics read it)."""

    time_to_first_token_s: Annotated[
        float | None,
        Field(description="Request start to the first chunk of answer text being sent."),
    ] = None
    switch_latency_s: Annotated[
        float | None,
        Field(
            description="The stream's stall at the handoff: the longer of the gaps into the "
            "first and into the second chunk of base-model text, measured where the chunks "
            "are sent (null: no base text)."
        ),
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

    @classmethod
    def of(cls, report: RunReport, timeline: StreamTimeline) -> WSDInfo:
        """The object for one finished choice."""
        reported = {item.name: getattr(report, item.name) for item in fields(RunReport)}
        return cls(
            **reported,
            time_to_first_token_s=timeline.time_to_first_chunk_s,
            switch_latency_s=timeline.switch_latency_s,
            draft_lag_s=timeline.draft_lag_p50_s,
            max_stream_gap_s=timeline.max_gap_s,
        )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobEntry(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobEntry] | None = None


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str
    wsd: WSDInfo | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    wsd: WSDInfo | None = None


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None
    wsd: WSDInfo | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error: OpenAI's shape."""

    error: ErrorDetail


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "wsd-server"
    root: str | None = None
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeResponse(BaseModel):
    prompt: str
