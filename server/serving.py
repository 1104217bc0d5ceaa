"""What chat and text completions share: choices run side by side, collected or streamed.

A request is validated completely before any response starts (`choices` raises); then its
choices run concurrently. A plain response collects them; a stream sends each piece as it
comes, and a failure after the stream has started becomes a `data: {"error": ...}` line
followed by `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
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
from server.protocol import REFUSAL_REASONS, SamplingRequest
from server.registry import EngineModel, ModelRegistry
from server.responses import TokenLogprobEntry, Usage, new_id, now
from server.sse import SSE_DONE, merge, sse, sse_error, to_json
from wsd_engine.engines.protocol import EngineRequestInvalid
from wsd_engine.request import RequestError

RequestT = TypeVar("RequestT", bound=SamplingRequest)


@dataclass(frozen=True)
class ResponseHeader:
    """What every chunk of one response repeats."""

    id: str
    created: int
    model: str


@dataclass
class CompletedChoice:
    """One choice, run to its end."""

    text: str
    logprobs: list[TokenLogprobEntry]
    end: ChoiceEnd


@dataclass
class _Collecting:
    text: str = ""
    logprobs: list[TokenLogprobEntry] = field(default_factory=list)
    end: ChoiceEnd | None = None


class OpenAIServing(ABC, Generic[RequestT]):
    """One endpoint: subclasses say what the choices are and how they look on the wire."""

    id_prefix: ClassVar[str]

    def __init__(self, registry: ModelRegistry, metrics: WSDMetrics) -> None:
        self.registry = registry
        self.metrics = metrics

    async def respond(self, body: RequestT, request: Request) -> Response:
        """Validate, then answer with one JSON response or an event stream."""
        request.state.model_name = body.model
        model = self.registry.get(body.model)  # an unknown model is a 404 before anything else
        down = request.app.state.server.engine_unavailable(role.value for role in model.roles)
        if down is not None:
            raise down
        refused = body.refused_field()
        if refused is not None:
            reason = REFUSAL_REASONS.get(refused, "not supported by this server")
            raise RequestError(
                f"{refused}: {reason}; send the request without it "
                "(the supported fields are listed in the README)",
                param=refused,
                code="unsupported_field",
            )
        header = ResponseHeader(new_id(self.id_prefix), now(), body.model)
        # rendering, tokenizing and compiling a schema must not hold up the event loop
        choices = await asyncio.to_thread(self._checked_choices, body, header.id)
        if body.stream:
            return StreamingResponse(
                self._stream(body, header, choices), media_type="text/event-stream"
            )
        with self._timers(body.model, len(choices)) as timers:
            completed = await _collect(choices, timers)
        usage = _usage([choice.end for choice in completed])
        return JSONResponse(to_json(self.response(body, header, completed, usage), ("wsd",)))

    def _checked_choices(self, body: RequestT, request_id: str) -> list[AsyncIterator[ChoiceEvent]]:
        """The choices, once the engine has accepted the output constraint: vLLM checks a
        schema only when the request reaches it, which for a stream is after the 200."""
        structured = body.structured_output()
        model = self.registry.get(body.model)
        if structured is not None and isinstance(model, EngineModel):
            try:
                model.engine.check_structured_output(structured)
            except EngineRequestInvalid as exc:
                raise RequestError(f"response_format: {exc}", param="response_format") from exc
        return self.choices(body, request_id)

    @contextmanager
    def _timers(self, model_name: str, num_choices: int) -> Iterator[list[ChoiceTimer]]:
        """One timer per choice; a choice that did not end counts as failed or cancelled."""
        timers = [self.metrics.track(model_name) for _ in range(num_choices)]
        try:
            yield timers
        finally:
            for timer in timers:
                timer.done(None)

    @abstractmethod
    def choices(self, body: RequestT, request_id: str) -> list[AsyncIterator[ChoiceEvent]]:
        """One event stream per choice, in index order; raises for anything a client can get
        wrong, before any engine work starts. Runs in a worker thread (it renders and
        tokenizes), so it only builds the streams: they start on the event loop."""

    @abstractmethod
    def response(
        self,
        body: RequestT,
        header: ResponseHeader,
        choices: list[CompletedChoice],
        usage: Usage,
    ) -> BaseModel:
        """The non-streamed response."""

    @abstractmethod
    def chunks(self, body: RequestT, header: ResponseHeader, event: ChoiceEvent) -> list[BaseModel]:
        """The stream chunks one choice event becomes."""

    def opening_chunks(self, body: RequestT, header: ResponseHeader) -> list[BaseModel]:
        """Chunks sent before any choice has output."""
        return []

    @abstractmethod
    def usage_chunk(self, header: ResponseHeader, usage: Usage) -> BaseModel:
        """The last chunk when the client asked for usage."""

    async def _stream(
        self, body: RequestT, header: ResponseHeader, choices: list[AsyncIterator[ChoiceEvent]]
    ) -> AsyncIterator[str]:
        drop = ("wsd",) if body.include_usage else ("wsd", "usage")
        for chunk in self.opening_chunks(body, header):
            yield sse(chunk, drop)
        ends: list[ChoiceEnd] = []
        with self._timers(body.model, len(choices)) as timers:
            try:
                async for event in merge(choices):
                    timer = timers[event.index]
                    if isinstance(event, ChoiceEnd):
                        ends.append(event)
                        timer.end(event)
                    for chunk in self.chunks(body, header, event):
                        yield sse(chunk, drop)
                    if isinstance(event, ChoicePiece):
                        timer.sent(event)  # the bytes are with the server now
            except Exception as exc:  # the response has started: report in-band
                error = to_openai_error(exc)
                self.metrics.count_error(body.model, int(error.status))
                yield sse_error(error)
                yield SSE_DONE
                return
        if body.include_usage:
            yield sse(self.usage_chunk(header, _usage(ends)))
        yield SSE_DONE


async def _collect(
    choices: list[AsyncIterator[ChoiceEvent]], timers: list[ChoiceTimer]
) -> list[CompletedChoice]:
    """Run the choices to their ends; each piece counts as sent when it arrives."""
    collecting = [_Collecting() for _ in choices]
    async for event in merge(choices):
        choice = collecting[event.index]
        choice.logprobs += event.logprobs or []
        if isinstance(event, ChoicePiece):
            choice.text += event.text
            timers[event.index].sent(event)
        else:
            choice.end = event
            timers[event.index].end(event)
    completed = []
    for choice in collecting:
        if choice.end is None:
            raise RuntimeError("a choice's event stream ended without its end")
        completed.append(CompletedChoice(choice.text, choice.logprobs, choice.end))
    return completed


def _usage(ends: list[ChoiceEnd]) -> Usage:
    """Each prompt counts once, however many choices it has."""
    prompts = {end.prompt_index: end.num_prompt_tokens for end in ends}
    prompt = sum(prompts.values())
    completion = sum(end.num_completion_tokens for end in ends)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )
