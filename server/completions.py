"""POST /v1/completions: raw prompts, answered by the pilot or the base model alone."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel

from server.choices import ChoiceEnd, ChoiceEvent, engine_choice
from server.protocol import CompletionRequest
from server.responses import (
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    TokenLogprobEntry,
    Usage,
)
from server.serving import CompletedChoice, OpenAIServing, ResponseHeader
from wsd_engine.request import RequestError, completion_budget


class CompletionServing(OpenAIServing[CompletionRequest]):
    """Text completions; each prompt of a batch gets `n` choices, numbered prompt-major."""

    id_prefix = "cmpl"

    def choices(self, body: CompletionRequest, request_id: str) -> list[AsyncIterator[ChoiceEvent]]:
        model = self.registry.get_engine_model(body.model)
        tokenizer = model.engine.tokenizer
        body.check_token_ids(len(tokenizer), body.model)
        streams = []
        for p, prompt in enumerate(body.prompts()):
            ids = list(tokenizer.encode(prompt)) if isinstance(prompt, str) else list(prompt)
            _check_vocabulary(ids, len(tokenizer), body.model)
            max_tokens = completion_budget(
                len(ids), body.max_tokens, model.max_model_len, param="prompt"
            )
            body.check_min_tokens(max_tokens)
            for i in range(body.n):
                index = p * body.n + i
                settings = body.sampling_settings(
                    max_tokens=max_tokens,
                    default_temperature=model.default_temperature,
                    choice_index=index,
                    num_logprobs=body.logprobs,
                )
                streams.append(
                    engine_choice(
                        model,
                        ids,
                        settings,
                        index=index,
                        request_id=f"{request_id}-{index}",
                        num_top_logprobs=body.logprobs,
                        prompt_index=p,
                    )
                )
        return streams

    def response(
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

    def chunks(
        self, body: CompletionRequest, header: ResponseHeader, event: ChoiceEvent
    ) -> list[BaseModel]:
        if isinstance(event, ChoiceEnd):
            choice = CompletionChoice(
                index=event.index, text="", finish_reason=event.finish_reason.value
            )
        else:
            logprobs = _logprobs(event.logprobs) if event.logprobs else None
            choice = CompletionChoice(index=event.index, text=event.text, logprobs=logprobs)
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


def _check_vocabulary(ids: list[int], vocab_size: int, model_id: str) -> None:
    """Token-id prompts must hold the model's token ids."""
    outside = [token for token in ids if not 0 <= token < vocab_size]
    if outside:
        raise RequestError(
            f"prompt: token id {outside[0]} is outside {model_id}'s vocabulary "
            f"(0 to {vocab_size - 1})",
            param="prompt",
        )
