"""POST /v1/chat/completions: the WSD model, the pilot or the base model answers messages."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel

from server.choices import ChoiceEnd, ChoiceEvent, engine_choice, wsd_choice
from server.protocol import ChatCompletionRequest
from server.registry import WSDModel
from server.responses import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessageOut,
    ChoiceLogprobs,
    DeltaMessage,
    Usage,
)
from server.serving import CompletedChoice, OpenAIServing, ResponseHeader
from wsd_engine.request import RequestError, completion_budget
from wsd_engine.templates import render_prompt


class ChatServing(OpenAIServing[ChatCompletionRequest]):
    """Chat completions for every served model id."""

    id_prefix = "chatcmpl"

    def choices(
        self, body: ChatCompletionRequest, request_id: str
    ) -> list[AsyncIterator[ChoiceEvent]]:
        model = self.registry.get(body.model)
        num_top = body.num_top_logprobs
        if isinstance(model, WSDModel):
            if (structured := body.structured_output()) is not None:
                raise RequestError(
                    f"response_format: {structured.kind.value} is not supported with the "
                    "wsd model yet; use the pilot or base model id for structured output",
                    param="response_format",
                    code="unsupported_value",
                )
            body.check_token_ids(len(model.orchestrator.base.tokenizer), body.model)
            wsd_request = body.to_wsd_request(request_id, model.defaults, model.default_temperature)
            prepared = model.orchestrator.prepare(wsd_request)
            body.check_min_tokens(prepared.max_tokens)
            return [
                wsd_choice(
                    model.orchestrator, prepared.for_choice(i), index=i, num_top_logprobs=num_top
                )
                for i in range(body.n)
            ]
        prompt = render_prompt(model.engine.tokenizer, body.engine_messages(), model.template)
        max_tokens = completion_budget(
            len(prompt.token_ids), body.requested_max_tokens(), model.max_model_len
        )
        body.check_token_ids(len(model.engine.tokenizer), body.model)
        body.check_min_tokens(max_tokens)
        return [
            engine_choice(
                model,
                prompt.token_ids,
                body.sampling_settings(
                    max_tokens=max_tokens,
                    default_temperature=model.default_temperature,
                    choice_index=i,
                    template_stop=prompt.stop,
                    num_logprobs=num_top,
                ),
                index=i,
                request_id=f"{request_id}-{i}",
                num_top_logprobs=num_top,
            )
            for i in range(body.n)
        ]

    def response(
        self,
        body: ChatCompletionRequest,
        header: ResponseHeader,
        choices: list[CompletedChoice],
        usage: Usage,
    ) -> BaseModel:
        response_choices = [
            ChatChoice(
                index=i,
                message=ChatMessageOut(content=choice.text),
                logprobs=ChoiceLogprobs(content=choice.logprobs) if body.logprobs else None,
                finish_reason=choice.end.finish_reason.value,
                wsd=choice.end.wsd,
            )
            for i, choice in enumerate(choices)
        ]
        return ChatCompletion(
            id=header.id,
            created=header.created,
            model=header.model,
            choices=response_choices,
            usage=usage,
            wsd=response_choices[0].wsd,
        )

    def opening_chunks(
        self, body: ChatCompletionRequest, header: ResponseHeader
    ) -> list[BaseModel]:
        opening = DeltaMessage(role="assistant", content="")
        return [_chunk(header, ChatChunkChoice(index=i, delta=opening)) for i in range(body.n)]

    def chunks(
        self, body: ChatCompletionRequest, header: ResponseHeader, event: ChoiceEvent
    ) -> list[BaseModel]:
        logprobs = ChoiceLogprobs(content=event.logprobs) if event.logprobs else None
        if not isinstance(event, ChoiceEnd):
            delta = DeltaMessage(content=event.text)
            return [
                _chunk(header, ChatChunkChoice(index=event.index, delta=delta, logprobs=logprobs))
            ]
        chunks = []
        if logprobs is not None:  # WSD logprobs arrive with the end
            delta = DeltaMessage(content="")
            chunks.append(
                _chunk(header, ChatChunkChoice(index=event.index, delta=delta, logprobs=logprobs))
            )
        final = ChatChunkChoice(
            index=event.index,
            delta=DeltaMessage(),
            finish_reason=event.finish_reason.value,
            wsd=event.wsd,
        )
        return [*chunks, _chunk(header, final)]

    def usage_chunk(self, header: ResponseHeader, usage: Usage) -> BaseModel:
        return ChatCompletionChunk(
            id=header.id, created=header.created, model=header.model, choices=[], usage=usage
        )


def _chunk(header: ResponseHeader, choice: ChatChunkChoice) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=header.id, created=header.created, model=header.model, choices=[choice]
    )
