"""POST /v1/responses and the stored responses: the Responses API over the chat path.

A request is turned into the chat request with the same answer (instructions, the stored
history of `previous_response_id`, the input) and passes chat's whole pre-flight before
anything starts; its one choice runs as a chat choice does (the same metrics, limits and
cancellation), and leaves as a response object or as the Responses event stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any, Literal

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from server.choices import ChoicePiece
from server.errors import OpenAIError, to_openai_error
from server.metrics import WSDMetrics
from server.registry import ModelRegistry
from server.response_store import ResponseStore, StoredResponse
from server.responses import new_id, now
from server.responses_objects import (
    IncompleteDetails,
    InputItem,
    InputItemList,
    OutputMessage,
    OutputText,
    ResponseError,
    ResponseObject,
    ResponseUsage,
)
from server.responses_protocol import ResponsesRequest
from server.serving import (
    ChoiceStreams,
    CompletedChoice,
    ResponseHeader,
    choice_clocks,
    collect,
    usage_of,
)
from server.serving_chat import ChatServing
from server.sse import merge, to_json
from wsd_engine.engines.engine import FinishReason
from wsd_engine.request import RequestError


class ResponsesServing:
    """The Responses API for every served model id."""

    def __init__(
        self, registry: ModelRegistry, metrics: WSDMetrics, chat: ChatServing, store: ResponseStore
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.chat = chat
        self.store = store

    async def handle(self, body: ResponsesRequest, request: Request) -> Response:
        """Check, then answer with a response object or the event stream."""
        request.state.model_name = body.model
        model = self.registry.get(body.model)
        down = request.app.state.server.engine_unavailable(role.value for role in model.roles)
        if down is not None:
            raise down
        body.refuse_unsupported()
        history = self._history(body.previous_response_id)
        chat_body = body.to_chat(history)
        header = ResponseHeader(
            new_id("resp", "_"), now(), body.model, request_id=request.state.request_id
        )
        choices = await asyncio.to_thread(self.chat.preflight, chat_body, model, header.request_id)
        item_id = new_id("msg", "_")
        default_temperature = model.default_temperature
        skeleton = _response(body, header, default_temperature)
        turn = _Turn(body, header, item_id, history, skeleton)
        if body.stream:
            return StreamingResponse(self._events(turn, choices), media_type="text/event-stream")
        with choice_clocks(self.metrics, body.model, 1) as clocks:
            (completed,) = await collect(choices, clocks)
        response = turn.finished(completed, usage_of([completed.end]))
        self._keep(turn, response)
        return JSONResponse(to_json(response, ("wsd",)))

    def retrieve(self, response_id: str) -> ResponseObject:
        """A stored response, or OpenAI's 404."""
        return self._stored(response_id).response

    def delete(self, response_id: str) -> str:
        """Forget a stored response, or OpenAI's 404."""
        if not self.store.delete(response_id):
            raise _not_found(response_id)
        return response_id

    def input_items(
        self, response_id: str, limit: int, order: str, after: str | None
    ) -> InputItemList:
        """A stored response's input items, a page at a time."""
        items = list(self._stored(response_id).input_items)
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item.id for item in items]
            if after not in ids:
                raise RequestError(f"after: no input item {after} in {response_id}", "after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return InputItemList(
            data=page,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
            has_more=len(items) > limit,
        )

    # -- internals -----------------------------------------------------------------------

    def _history(self, previous_response_id: str | None) -> list[dict[str, str]]:
        """The chat messages a continuation starts from: the previous response's input and
        output (its instructions are not carried over, as OpenAI's are not)."""
        if previous_response_id is None:
            return []
        if not self.store.enabled:
            raise RequestError(
                "previous_response_id: this server keeps no responses (server."
                "response_store_size is 0); send the whole conversation as input instead",
                param="previous_response_id",
            )
        previous = self.store.get(previous_response_id)
        if previous is None:
            raise _not_found(previous_response_id, param="previous_response_id")
        answer = previous.response.output_text
        return [*previous.history, {"role": "assistant", "content": answer}]

    def _stored(self, response_id: str) -> StoredResponse:
        stored = self.store.get(response_id)
        if stored is None:
            raise _not_found(response_id)
        return stored

    def _keep(self, turn: _Turn, response: ResponseObject) -> None:
        if not turn.body.store:
            return
        inputs = turn.body.input_messages()
        items = [
            InputItem(
                id=message.id or new_id("msg", "_"),
                role=message.role,
                content=[{"type": _part_type(message.role), "text": message.text()}],
            )
            for message in inputs
        ]
        history = [*turn.history, *(message.chat_message() for message in inputs)]
        self.store.put(StoredResponse(response, items, history, time.monotonic()))

    async def _events(self, turn: _Turn, choices: ChoiceStreams) -> AsyncIterator[str]:
        """The Responses event stream: created, in progress, the message and its text as it
        comes, then completed (or incomplete); a failure after the start is response.failed."""
        events = _EventWriter()
        started = turn.skeleton.model_copy(update={"status": "in_progress"})
        yield events.send("response.created", response=started)
        yield events.send("response.in_progress", response=started)
        item = OutputMessage(id=turn.item_id, status="in_progress")
        yield events.send("response.output_item.added", output_index=0, item=item)
        part = OutputText(text="")
        yield events.send("response.content_part.added", **turn.place(), part=part)
        text, response = "", None
        with choice_clocks(self.metrics, turn.body.model, 1) as clocks:
            clock = clocks[0]
            try:
                # through merge, as chat: the choice runs in a task of its own, cancelled once
                async for event in merge(choices):
                    if isinstance(event, ChoicePiece):
                        if event.text:
                            text += event.text
                            yield events.send(
                                "response.output_text.delta", **turn.place(), delta=event.text,
                                logprobs=[],
                            )  # fmt: skip
                            clock.sent(event)
                        continue
                    completed = CompletedChoice(text, [], event, clock.completed(event))
                    response = turn.finished(completed, usage_of([event]))
                    self._keep(turn, response)
                    clock.timer.end(event, completed.wsd)
            except Exception as exc:  # the stream has started: report in-band
                error = to_openai_error(exc)
                self.metrics.count_error(turn.body.model, int(error.status))
                failed = turn.skeleton.model_copy(
                    update={"status": "failed", "error": ResponseError(
                        code=error.code or "server_error", message=error.message)}
                )  # fmt: skip
                yield events.send("response.failed", response=failed)
                return
        if response is None:
            raise RuntimeError("the choice's event stream ended without its end")
        done_part = OutputText(text=text)
        yield events.send("response.output_text.done", **turn.place(), text=text, logprobs=[])
        yield events.send("response.content_part.done", **turn.place(), part=done_part)
        yield events.send("response.output_item.done", output_index=0, item=response.output[0])
        final = "response.completed" if response.status == "completed" else "response.incomplete"
        yield events.send(final, response=response)


class _Turn:
    """One Responses request being answered."""

    def __init__(
        self,
        body: ResponsesRequest,
        header: ResponseHeader,
        item_id: str,
        history: list[dict[str, str]],
        skeleton: ResponseObject,
    ) -> None:
        self.body = body
        self.header = header
        self.item_id = item_id
        self.history = history
        self.skeleton = skeleton

    def place(self) -> dict[str, Any]:
        """Where the text goes: the one message's one part."""
        return {"item_id": self.item_id, "output_index": 0, "content_index": 0}

    def finished(self, choice: CompletedChoice, usage: Any) -> ResponseObject:
        """The response once its one choice has ended."""
        is_cut = choice.end.finish_reason is FinishReason.LENGTH
        status: Literal["completed", "incomplete"] = "incomplete" if is_cut else "completed"
        message = OutputMessage(
            id=self.item_id, status=status, content=[OutputText(text=choice.text)]
        )
        return self.skeleton.model_copy(
            update={
                "status": status,
                "incomplete_details": IncompleteDetails(reason="max_output_tokens")
                if is_cut
                else None,
                "output": [message],
                "usage": ResponseUsage(
                    input_tokens=usage.prompt_tokens,
                    output_tokens=usage.completion_tokens,
                    total_tokens=usage.total_tokens,
                ),
                "wsd": choice.wsd,
            }
        )


class _EventWriter:
    """Server-sent events with their `event:` line and a growing `sequence_number`."""

    def __init__(self) -> None:
        self.sequence_number = 0

    def send(self, kind: str, **fields: Any) -> str:
        payload: dict[str, Any] = {"type": kind, "sequence_number": self.sequence_number}
        for name, value in fields.items():
            payload[name] = to_json(value, ("wsd",)) if hasattr(value, "model_dump") else value
        self.sequence_number += 1
        return f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _response(body: ResponsesRequest, header: ResponseHeader, temperature: float) -> ResponseObject:
    """The response's settings, before any output."""
    return ResponseObject(
        id=header.id,
        created_at=header.created,
        status="in_progress",
        instructions=body.instructions,
        max_output_tokens=body.max_output_tokens,
        model=body.model,
        parallel_tool_calls=body.parallel_tool_calls,
        previous_response_id=body.previous_response_id,
        store=body.store,
        temperature=temperature if body.temperature is None else body.temperature,
        text={"format": body.text.format.echoed()},
        top_p=1.0 if body.top_p is None else body.top_p,
        user=body.user,
        metadata=body.metadata or {},
    )


def _part_type(role: str) -> str:
    return "output_text" if role == "assistant" else "input_text"


def _not_found(response_id: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(
        f"Response with id '{response_id}' not found.",
        HTTPStatus.NOT_FOUND,
        param=param,
        code="response_not_found",
    )
