"""Raw-prompt completions (/v1/completions) for the pilot and base model ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from server.errors import to_openai_error
from server.generation import (
    ChoiceEnd,
    ChoiceEvent,
    ChoicePiece,
    observed,
    single_model_choice,
)
from server.metrics import WSDMetrics
from server.models import ModelRegistry
from server.protocol import (
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    TokenLogprobEntry,
    Usage,
    new_id,
    now,
)
from server.streaming import SSE_DONE, merge, sse, sse_error
from wsd_engine.engines.protocol import SamplingSettings
from wsd_engine.request import ContextLengthExceeded


@dataclass
class _Result:
    text: str = ""
    entries: list[TokenLogprobEntry] = field(default_factory=list)
    end: ChoiceEnd | None = None


class CompletionService:
    """Serves /v1/completions; each prompt of a batch gets `n` choices."""

    def __init__(self, registry: ModelRegistry, metrics: WSDMetrics) -> None:
        self.registry = registry
        self.metrics = metrics

    def start(self, request: CompletionRequest) -> list[AsyncIterator[ChoiceEvent]]:
        """Validate and prepare the choices (prompt-major order, as OpenAI numbers them)."""
        model = self.registry.get_engine_model(request.model)
        engine = model.engine
        assert engine is not None
        request_id = new_id("cmpl")
        streams = []
        for p, prompt in enumerate(request.prompts()):
            ids = list(engine.tokenizer.encode(prompt)) if isinstance(prompt, str) else list(prompt)
            max_tokens = request.max_tokens or 16
            if len(ids) + max_tokens > engine.max_model_len:
                raise ContextLengthExceeded(
                    f"This model's maximum context length is {engine.max_model_len} tokens. "
                    f"However, you requested {len(ids) + max_tokens} tokens ({len(ids)} in the "
                    f"prompt, {max_tokens} in the completion).",
                    param="prompt",
                )
            for i in range(request.n):
                index = p * request.n + i
                settings = SamplingSettings(
                    max_tokens=max_tokens,
                    temperature=1.0 if request.temperature is None else request.temperature,
                    top_p=request.top_p or 1.0,
                    seed=None if request.seed is None else request.seed + index,
                    stop=request.stop_strings(),
                    num_logprobs=request.logprobs,
                )
                role = model.role.value if model.role else "base"
                choice = single_model_choice(
                    engine, role, ids, settings, index, f"{request_id}-{index}", request.logprobs
                )
                streams.append(observed(choice, self.metrics, model.id))
        return streams

    async def complete(
        self, request: CompletionRequest, choices: list[AsyncIterator[ChoiceEvent]]
    ) -> Completion:
        """Run every choice to the end and build the response."""
        results = [_Result() for _ in choices]
        async for event in merge(choices):
            result = results[event.index]
            if isinstance(event, ChoicePiece):
                result.text += event.text
                result.entries += event.logprobs or []
            else:
                result.end = event
        ends = [r.end for r in results if r.end is not None]
        return Completion(
            id=new_id("cmpl"),
            created=now(),
            model=request.model,
            choices=[
                CompletionChoice(
                    index=i,
                    text=r.text,
                    logprobs=_logprobs(r.entries) if request.logprobs is not None else None,
                    finish_reason=r.end.finish_reason if r.end else "stop",
                )
                for i, r in enumerate(results)
            ],
            usage=_usage(ends, num_prompts=len(request.prompts()), n=request.n),
        )

    async def stream(
        self, request: CompletionRequest, choices: list[AsyncIterator[ChoiceEvent]]
    ) -> AsyncIterator[str]:
        """The response as server-sent events, ending with [DONE]."""
        response_id, created = new_id("cmpl"), now()
        drop = () if request.include_usage else ("usage",)
        ends: list[ChoiceEnd] = []

        def chunk(choice: CompletionChoice) -> str:
            payload = Completion(
                id=response_id, created=created, model=request.model, choices=[choice]
            )
            return sse(payload, drop_none=drop)

        try:
            async for event in merge(choices):
                if isinstance(event, ChoicePiece):
                    logprobs = _logprobs(event.logprobs) if event.logprobs else None
                    yield chunk(
                        CompletionChoice(index=event.index, text=event.text, logprobs=logprobs)
                    )
                else:
                    ends.append(event)
                    yield chunk(
                        CompletionChoice(
                            index=event.index, text="", finish_reason=event.finish_reason
                        )
                    )
        except Exception as exc:
            error = to_openai_error(exc)
            self.metrics.errors.labels(request.model, str(int(error.status))).inc()
            yield sse_error(error)
            yield SSE_DONE
            return
        if request.include_usage:
            usage = _usage(ends, num_prompts=len(request.prompts()), n=request.n)
            payload = Completion(
                id=response_id, created=created, model=request.model, choices=[], usage=usage
            )
            yield sse(payload)
        yield SSE_DONE


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


def _usage(ends: list[ChoiceEnd], num_prompts: int, n: int) -> Usage:
    # each prompt counts once, however many choices it has
    ordered = sorted(ends, key=lambda end: end.index)
    prompt = sum(end.num_prompt_tokens for end in ordered[::n])
    completion = sum(end.num_completion_tokens for end in ends)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )
