"""What chat and text completions share: choices run side by side, collected or streamed.

A request passes its endpoint's pre-flight completely before any response starts
(`preflight` raises); then its choices run concurrently. A plain response collects them; a
stream sends each piece as it comes, and a failure after the stream has started becomes a
`data: {"error": ...}` line followed by `data: [DONE]`.

Each choice's timings are taken where its text leaves (`StreamTimeline`); when the choice
ends, its `wsd` object is put together once, from the run's report and those timings, and the
metrics read it.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from server.choices import ChoiceEnd, ChoiceEvent, ChoicePiece
from server.errors import to_openai_error
from server.metrics import ChoiceTimer, WSDMetrics
from server.protocol import GenerationRequest
from server.registry import ModelRegistry, ServedModel, WSDModel
from server.responses import TokenLogprobEntry, Usage, WSDInfo, new_id, now
from server.sse import SSE_DONE, merge, sse, sse_error, to_json
from wsd_engine.engines.engine import EngineRequestInvalid
from wsd_engine.request import RequestError
from wsd_engine.timeline import StreamTimeline

RequestT = TypeVar("RequestT", bound=GenerationRequest)
ChoiceStreams = list[AsyncIterator[ChoiceEvent]]


@dataclass(frozen=True)
class ResponseHeader:
    """What every chunk of one response repeats, and the request id the engines see."""

    id: str
    created: int
    model: str
    request_id: str  # the client's X-Request-Id, or ours


@dataclass
class CompletedChoice:
    """One choice, run to its end."""

    text: str
    logprobs: list[TokenLogprobEntry]
    end: ChoiceEnd
    wsd: WSDInfo | None


@dataclass
class _Collecting:
    text: str = ""
    logprobs: list[TokenLogprobEntry] = field(default_factory=list)
    end: ChoiceEnd | None = None
    wsd: WSDInfo | None = None


@dataclass
class ChoiceClock:
    """One choice's stream timings and the metrics that read them."""

    timeline: StreamTimeline
    timer: ChoiceTimer

    def sent(self, piece: ChoicePiece) -> None:
        """A chunk with the piece's text has just been sent (or, unstreamed, has arrived)."""
        if piece.text:
            self.timeline.sent(piece.text, piece.source, time.monotonic(), piece.pilot_times)
            self.timer.sent()

    def completed(self, end: ChoiceEnd) -> WSDInfo | None:
        """The choice's `wsd` object (WSD only), the one time it is made."""
        return None if end.report is None else WSDInfo.of(end.report, self.timeline)


def check_structured_output(body: GenerationRequest, model: ServedModel) -> None:
    """A `response_format` constraint, checked before anything starts: refused for the WSD
    model (not yet supported), compiled now by a single model's engine (vLLM checks a schema
    only when the request reaches it, which for a stream is after the 200)."""
    structured = body.structured_output()
    if structured is None:
        return
    if isinstance(model, WSDModel):
        raise RequestError(
            f"response_format: {structured.kind.value} is not supported with the wsd model "
            "yet; use the pilot or base model id for structured output",
            param="response_format",
            code="unsupported_value",
        )
    try:
        model.engine.check_structured_output(structured)
    except EngineRequestInvalid as exc:
        raise RequestError(f"response_format: {exc}", param="response_format") from exc


class OpenAIServing(ABC, Generic[RequestT]):
    """One endpoint: subclasses say what the checks and choices are and how they look on
    the wire."""

    id_prefix: ClassVar[str]

    def __init__(self, registry: ModelRegistry, metrics: WSDMetrics) -> None:
        self.registry = registry
        self.metrics = metrics

    async def handle(self, body: RequestT, request: Request) -> Response:
        """Check, then answer with one JSON response or an event stream."""
        request.state.model_name = body.model
        model = self.registry.get(body.model)  # an unknown model is a 404 before anything else
        down = request.app.state.server.engine_unavailable(role.value for role in model.roles)
        if down is not None:
            raise down
        header = ResponseHeader(
            new_id(self.id_prefix), now(), body.model, request_id=request.state.request_id
        )
        # rendering, tokenizing and compiling a schema must not hold up the event loop
        choices = await asyncio.to_thread(self.preflight, body, model, header.request_id)
        if body.stream:
            return StreamingResponse(
                self._stream(body, header, choices), media_type="text/event-stream"
            )
        with choice_clocks(self.metrics, body.model, len(choices)) as clocks:
            completed = await collect(choices, clocks)
        usage = usage_of([choice.end for choice in completed])
        response = self.collected_response(body, header, completed, usage)
        return JSONResponse(to_json(response, ("wsd",)))

    @abstractmethod
    def preflight(self, body: RequestT, model: ServedModel, request_id: str) -> ChoiceStreams:
        """Every check the request gets before anything starts (refused fields, structured
        output, token ids, context and limits), then one event stream per choice, in index
        order. Runs in a worker thread (it renders and tokenizes), so it only builds the
        streams: they start on the event loop. Engine request ids start with `request_id`."""

    @abstractmethod
    def collected_response(
        self,
        body: RequestT,
        header: ResponseHeader,
        choices: list[CompletedChoice],
        usage: Usage,
    ) -> BaseModel:
        """The non-streamed response."""

    @abstractmethod
    def piece_chunks(
        self, body: RequestT, header: ResponseHeader, piece: ChoicePiece
    ) -> list[BaseModel]:
        """The stream chunks a piece of one choice becomes."""

    @abstractmethod
    def end_chunks(
        self, body: RequestT, header: ResponseHeader, end: ChoiceEnd, wsd: WSDInfo | None
    ) -> list[BaseModel]:
        """The stream chunks the end of one choice becomes."""

    def opening_chunks(self, body: RequestT, header: ResponseHeader) -> list[BaseModel]:
        """Chunks sent before any choice has output."""
        return []

    @abstractmethod
    def usage_chunk(self, header: ResponseHeader, usage: Usage) -> BaseModel:
        """The last chunk when the client asked for usage."""

    async def _stream(
        self, body: RequestT, header: ResponseHeader, choices: ChoiceStreams
    ) -> AsyncIterator[str]:
        drop = ("wsd",) if body.include_usage else ("wsd", "usage")
        for chunk in self.opening_chunks(body, header):
            yield sse(chunk, drop)
        ends: list[ChoiceEnd] = []
        with choice_clocks(self.metrics, body.model, len(choices)) as clocks:
            try:
                async for event in merge(choices):
                    clock = clocks[event.index]
                    if isinstance(event, ChoicePiece):
                        for chunk in self.piece_chunks(body, header, event):
                            yield sse(chunk, drop)
                        clock.sent(event)  # the bytes are with the server now
                        continue
                    wsd = clock.completed(event)
                    for chunk in self.end_chunks(body, header, event, wsd):
                        yield sse(chunk, drop)
                    ends.append(event)
                    clock.timer.end(event, wsd)
            except Exception as exc:  # the response has started: report in-band
                error = to_openai_error(exc)
                self.metrics.count_error(body.model, int(error.status))
                yield sse_error(error)
                yield SSE_DONE
                return
        if body.include_usage:
            yield sse(self.usage_chunk(header, usage_of(ends)))
        yield SSE_DONE


@contextmanager
def choice_clocks(
    metrics: WSDMetrics, model_name: str, num_choices: int
) -> Iterator[list[ChoiceClock]]:
    """One clock per choice; a choice that did not end counts as failed or cancelled."""
    clocks = []
    for _ in range(num_choices):
        timeline = StreamTimeline(time.monotonic())
        clocks.append(ChoiceClock(timeline, metrics.track(model_name, timeline)))
    try:
        yield clocks
    finally:
        for clock in clocks:
            clock.timer.done(None)


async def collect(choices: ChoiceStreams, clocks: list[ChoiceClock]) -> list[CompletedChoice]:
    """Run the choices to their ends; each piece counts as sent when it arrives."""
    collecting = [_Collecting() for _ in choices]
    async for event in merge(choices):
        choice = collecting[event.index]
        clock = clocks[event.index]
        choice.logprobs += event.logprobs or []
        if isinstance(event, ChoicePiece):
            choice.text += event.text
            clock.sent(event)
        else:
            choice.end = event
            choice.wsd = clock.completed(event)
            clock.timer.end(event, choice.wsd)
    completed = []
    for choice in collecting:
        if choice.end is None:
            raise RuntimeError("a choice's event stream ended without its end")
        completed.append(CompletedChoice(choice.text, choice.logprobs, choice.end, choice.wsd))
    return completed


def usage_of(ends: list[ChoiceEnd]) -> Usage:
    """Each prompt counts once, however many choices it has."""
    prompts = {end.prompt_index: end.num_prompt_tokens for end in ends}
    prompt = sum(prompts.values())
    completion = sum(end.num_completion_tokens for end in ends)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )
