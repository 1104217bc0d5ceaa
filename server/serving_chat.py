"""POST /v1/chat/completions: the WSD model, the pilot or the base model answers messages."""

from __future__ import annotations

from pydantic import BaseModel

from server.choices import ChoiceEnd, ChoicePiece, engine_choice, wsd_choice
from server.protocol import ChatCompletionRequest
from server.registry import ServedModel, WSDModel
from server.responses import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessageOut,
    ChoiceLogprobs,
    DeltaMessage,
    Usage,
    WSDInfo,
)
from server.serving import (
    ChoiceStreams,
    CompletedChoice,
    OpenAIServing,
    ResponseHeader,
    check_structured_output,
)
from wsd_engine.request import completion_budget
from wsd_engine.templates import render_prompt


class ChatServing(OpenAIServing[ChatCompletionRequest]):
    """Chat completions for every served model id."""

    id_prefix = "chatcmpl"

    def preflight(
        self, body: ChatCompletionRequest, model: ServedModel, request_id: str
    ) -> ChoiceStreams:
        body.refuse_unsupported()
        check_structured_output(body, model)
        if isinstance(model, WSDModel):
            # token ids are the base model's, as `usage` counts them
            body.check_token_ids(len(model.orchestrator.base.tokenizer), body.model)
            wsd_request = body.to_wsd_request(request_id, model.defaults, model.default_temperature)
            prepared = model.orchestrator.prepare(wsd_request)
            body.check_min_tokens(prepared.max_tokens)
            return [
                wsd_choice(model.orchestrator, prepared.for_choice(i, body.n), index=i)
                for i in range(body.n)
            ]
        body.check_token_ids(len(model.engine.tokenizer), body.model)
        prompt = render_prompt(model.engine.tokenizer, body.engine_messages(), model.template)
        max_tokens = completion_budget(
            len(prompt.token_ids), body.requested_max_tokens(), model.max_model_len
        )
        body.check_min_tokens(max_tokens)
        sampling = body.sampling(
            default_temperature=model.default_temperature, num_logprobs=body.num_top_logprobs
        )
        return [
            engine_choice(
                model,
                prompt.token_ids,
                sampling.for_choice(i),
                max_tokens=max_tokens,
                stop=(*prompt.stop, *body.stop_strings()),
                index=i,
                request_id=request_id if body.n == 1 else f"{request_id}-{i}",
            )
            for i in range(body.n)
        ]

    def collected_response(
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
                wsd=choice.wsd,
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

    def piece_chunks(
        self, body: ChatCompletionRequest, header: ResponseHeader, piece: ChoicePiece
    ) -> list[BaseModel]:
        logprobs = ChoiceLogprobs(content=piece.logprobs) if piece.logprobs else None
        delta = DeltaMessage(content=piece.text)
        return [_chunk(header, ChatChunkChoice(index=piece.index, delta=delta, logprobs=logprobs))]

    def end_chunks(
        self,
        body: ChatCompletionRequest,
        header: ResponseHeader,
        end: ChoiceEnd,
        wsd: WSDInfo | None,
    ) -> list[BaseModel]:
        chunks = []
        if end.logprobs:  # WSD logprobs arrive with the end
            logprobs = ChoiceLogprobs(content=end.logprobs)
            delta = DeltaMessage(content="")
            chunks.append(
                _chunk(header, ChatChunkChoice(index=end.index, delta=delta, logprobs=logprobs))
            )
        final = ChatChunkChoice(
            index=end.index,
            delta=DeltaMessage(),
            finish_reason=end.finish_reason.value,
            wsd=wsd,
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
