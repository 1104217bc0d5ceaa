"""POST /v1/completions: raw prompts, answered by the pilot or the base model alone."""

from __future__ import annotations

from pydantic import BaseModel

from server.choices import ChoiceEnd, ChoicePiece, engine_choice
from server.protocol import CompletionRequest
from server.registry import ServedModel
from server.responses import (
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    TokenLogprobEntry,
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
from wsd_engine.request import check_vocabulary, completion_budget


class CompletionServing(OpenAIServing[CompletionRequest]):
    """Text completions; each prompt of a batch gets `n` choices, numbered prompt-major."""

    id_prefix = "cmpl"

    def preflight(
        self, body: CompletionRequest, model: ServedModel, request_id: str
    ) -> ChoiceStreams:
        body.refuse_unsupported()
        model = self.registry.get_engine_model(body.model)  # the WSD model serves chat only
        check_structured_output(body, model)
        tokenizer = model.engine.tokenizer
        body.check_token_ids(len(tokenizer), body.model)
        sampling = body.sampling(
            default_temperature=model.default_temperature, num_logprobs=body.logprobs
        )
        prompts = body.prompts()
        num_choices = len(prompts) * body.n
        streams = []
        for p, prompt in enumerate(prompts):
            ids = list(tokenizer.encode(prompt)) if isinstance(prompt, str) else list(prompt)
            check_vocabulary(ids, len(tokenizer), body.model, param="prompt")
            max_tokens = completion_budget(
                len(ids), body.max_tokens, model.max_model_len, param="prompt"
            )
            body.check_min_tokens(max_tokens)
            for i in range(body.n):
                index = p * body.n + i
                choice_id = request_id if num_choices == 1 else f"{request_id}-{index}"
                streams.append(
                    engine_choice(
                        model,
                        ids,
                        sampling.for_choice(index),
                        max_tokens=max_tokens,
                        stop=body.stop_strings(),
                        index=index,
                        request_id=choice_id,
                        prompt_index=p,
                    )
                )
        return streams

    def collected_response(
        self,
        body: CompletionRequest,
        header: ResponseHeader,
        choices: list[CompletedChoice],
        usage: Usage,
    ) -> BaseModel:
        return Completion(
            id=header.id,
            created=header.created,
            model=header.model,
            choices=[
                CompletionChoice(
                    index=i,
                    text=choice.text,
                    logprobs=_logprobs(choice.logprobs) if body.logprobs is not None else None,
                    finish_reason=choice.end.finish_reason.value,
                )
                for i, choice in enumerate(choices)
            ],
            usage=usage,
        )

    def piece_chunks(
        self, body: CompletionRequest, header: ResponseHeader, piece: ChoicePiece
    ) -> list[BaseModel]:
        logprobs = _logprobs(piece.logprobs) if piece.logprobs else None
        choice = CompletionChoice(index=piece.index, text=piece.text, logprobs=logprobs)
        return [_chunk(header, [choice])]

    def end_chunks(
        self, body: CompletionRequest, header: ResponseHeader, end: ChoiceEnd, wsd: WSDInfo | None
    ) -> list[BaseModel]:
        choice = CompletionChoice(index=end.index, text="", finish_reason=end.finish_reason.value)
        return [_chunk(header, [choice])]

    def usage_chunk(self, header: ResponseHeader, usage: Usage) -> BaseModel:
        return _chunk(header, [], usage)


def _chunk(
    header: ResponseHeader, choices: list[CompletionChoice], usage: Usage | None = None
) -> Completion:
    return Completion(
        id=header.id, created=header.created, model=header.model, choices=choices, usage=usage
    )


def _logprobs(entries: list[TokenLogprobEntry]) -> CompletionLogprobs:
    result = CompletionLogprobs()
    offset = 0
    for entry in entries:
        result.tokens.append(entry.token)
        result.token_logprobs.append(entry.logprob)
        result.top_logprobs.append({top.token: top.logprob for top in entry.top_logprobs})
        result.text_offset.append(offset)
        offset += len(entry.token)
    return result
