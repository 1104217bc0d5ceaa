"""Chat completions: requests to choices to OpenAI responses and event streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from server.errors import OpenAIError, to_openai_error
from server.generation import (
    ChoiceEnd,
    ChoiceEvent,
    ChoicePiece,
    observed,
    single_model_choice,
    wsd_choice,
)
from server.metrics import WSDMetrics
from server.models import ModelRegistry, ServedModel
from server.protocol import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessageOut,
    ChoiceLogprobs,
    DeltaMessage,
    SwitchMetadata,
    TokenLogprobEntry,
    Usage,
    new_id,
    now,
)
from server.streaming import SSE_DONE, merge, sse, sse_error
from wsd_engine.engines.protocol import SamplingSettings
from wsd_engine.request import ContextLengthExceeded, WSDParams, WSDRequest
from wsd_engine.templates import render_prompt


@dataclass
class _ChoiceResult:
    text: str = ""
    logprobs: list[TokenLogprobEntry] = field(default_factory=list)
    end: ChoiceEnd | None = None


class ChatService:
    """Serves /v1/chat/completions for the WSD model and the two single models."""

    def __init__(self, registry: ModelRegistry, metrics: WSDMetrics) -> None:
        self.registry = registry
        self.metrics = metrics

    def start(self, request: ChatCompletionRequest) -> list[AsyncIterator[ChoiceEvent]]:
        """Validate the request against its model and prepare one event stream per choice.

        Everything a client can get wrong is checked here, before any response starts.
        """
        model = self.registry.get(request.model)
        return [observed(s, self.metrics, model.id) for s in self._choices(request, model)]

    def _choices(
        self, request: ChatCompletionRequest, model: ServedModel
    ) -> list[AsyncIterator[ChoiceEvent]]:
        request_id = new_id("chatcmpl")
        num_top = request.top_logprobs or 0 if request.logprobs else None
        if model.is_wsd:
            first = self._wsd_request(request, request_id)
            return [
                wsd_choice(
                    self.registry.orchestrator,
                    replace(
                        first,
                        request_id=f"{request_id}-{i}",
                        seed=None if first.seed is None else first.seed + i,
                    ),
                    i,
                    num_top,
                )
                for i in range(request.n)
            ]
        engine = model.engine
        assert engine is not None
        prompt = render_prompt(engine.tokenizer, request.engine_messages(), model.template)
        max_tokens = self._max_tokens(request, len(prompt.token_ids), engine.max_model_len)
        return [
            single_model_choice(
                engine,
                model.role.value if model.role else "base",
                prompt.token_ids,
                SamplingSettings(
                    max_tokens=max_tokens,
                    temperature=_temperature(request, default=1.0),
                    top_p=request.top_p or 1.0,
                    seed=None if request.seed is None else request.seed + i,
                    stop=(*prompt.stop, *request.stop_strings()),
                    num_logprobs=num_top,
                ),
                i,
                f"{request_id}-{i}",
                num_top,
            )
            for i in range(request.n)
        ]

    def _wsd_request(self, request: ChatCompletionRequest, request_id: str) -> WSDRequest:
        """The orchestrator's request; raises ContextLengthExceeded before anything starts."""
        options = request.wsd
        params = WSDParams.from_config(
            self.registry.config.wsd,
            threshold=options.threshold if options else None,
            window=options.window if options else None,
            draft_max_tokens=options.draft_max_tokens if options else None,
        )
        orchestrator = self.registry.orchestrator
        probe = WSDRequest(request_id, request.engine_messages(), 1, params)
        pilot_prompt, base_prompt = orchestrator.render(probe)
        context = min(orchestrator.pilot.max_model_len, orchestrator.base.max_model_len)
        longest_prompt = max(len(pilot_prompt.token_ids), len(base_prompt.token_ids))
        max_tokens = self._max_tokens(request, longest_prompt, context)
        return replace(
            probe,
            max_tokens=max_tokens,
            temperature=_temperature(request, default=0.0),
            top_p=request.top_p or 1.0,
            seed=request.seed,
            stop=request.stop_strings(),
        )

    @staticmethod
    def _max_tokens(request: ChatCompletionRequest, prompt_len: int, context: int) -> int:
        requested = request.requested_max_tokens()
        if requested is None:
            if prompt_len >= context:
                raise ContextLengthExceeded(
                    f"This model's maximum context length is {context} tokens. However, your "
                    f"messages resulted in {prompt_len} tokens. Please reduce the length of "
                    "the messages."
                )
            return context - prompt_len
        if prompt_len + requested > context:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {context} tokens. However, you "
                f"requested {prompt_len + requested} tokens ({prompt_len} in the messages, "
                f"{requested} in the completion). Please reduce the length of the messages "
                "or completion."
            )
        return requested

    async def complete(
        self, request: ChatCompletionRequest, choices: list[AsyncIterator[ChoiceEvent]]
    ) -> ChatCompletion:
        """Run every choice to the end and build the response."""
        results = [_ChoiceResult() for _ in choices]
        async for event in merge(choices):
            result = results[event.index]
            if isinstance(event, ChoicePiece):
                result.text += event.text
                result.logprobs += event.logprobs or []
            else:
                result.end = event
                result.logprobs += event.logprobs or []
        ends = [r.end for r in results if r.end is not None]
        response_choices = [
            ChatChoice(
                index=i,
                message=ChatMessageOut(content=r.text),
                logprobs=ChoiceLogprobs(content=r.logprobs) if request.logprobs else None,
                finish_reason=r.end.finish_reason if r.end else "stop",
                wsd=r.end.wsd if r.end else None,
            )
            for i, r in enumerate(results)
        ]
        return ChatCompletion(
            id=new_id("chatcmpl"),
            created=now(),
            model=request.model,
            choices=response_choices,
            usage=_usage(ends),
            wsd=response_choices[0].wsd,
        )

    async def stream(
        self, request: ChatCompletionRequest, choices: list[AsyncIterator[ChoiceEvent]]
    ) -> AsyncIterator[str]:
        """The response as server-sent events, ending with [DONE]."""
        response_id, created = new_id("chatcmpl"), now()
        drop = ("wsd",) if request.include_usage else ("wsd", "usage")

        def chunk(choice: ChatChunkChoice) -> str:
            payload = ChatCompletionChunk(
                id=response_id, created=created, model=request.model, choices=[choice]
            )
            return sse(payload, drop_none=drop)

        for i in range(len(choices)):
            yield chunk(ChatChunkChoice(index=i, delta=DeltaMessage(role="assistant", content="")))
        ends: list[ChoiceEnd] = []
        try:
            async for event in merge(choices):
                if isinstance(event, ChoicePiece):
                    logprobs = ChoiceLogprobs(content=event.logprobs) if event.logprobs else None
                    delta = DeltaMessage(content=event.text)
                    yield chunk(ChatChunkChoice(index=event.index, delta=delta, logprobs=logprobs))
                    continue
                ends.append(event)
                if event.logprobs:
                    logprobs = ChoiceLogprobs(content=event.logprobs)
                    delta = DeltaMessage(content="")
                    yield chunk(ChatChunkChoice(index=event.index, delta=delta, logprobs=logprobs))
                yield chunk(_final_choice(event.index, event.finish_reason, event.wsd))
        except Exception as exc:  # the response has started: report in-band
            error = to_openai_error(exc)
            self.metrics.errors.labels(request.model, str(int(error.status))).inc()
            yield sse_error(error)
            yield SSE_DONE
            return
        if request.include_usage:
            usage_chunk = ChatCompletionChunk(
                id=response_id, created=created, model=request.model, choices=[], usage=_usage(ends)
            )
            yield sse(usage_chunk)
        yield SSE_DONE


def _final_choice(index: int, finish_reason: str, wsd: SwitchMetadata | None) -> ChatChunkChoice:
    return ChatChunkChoice(index=index, delta=DeltaMessage(), finish_reason=finish_reason, wsd=wsd)


def _usage(ends: list[ChoiceEnd]) -> Usage:
    prompt = ends[0].num_prompt_tokens if ends else 0
    completion = sum(end.num_completion_tokens for end in ends)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _temperature(request: ChatCompletionRequest, default: float) -> float:
    # Single models follow OpenAI's default (1.0); the WSD model decodes greedily by default,
    # as the paper does.
    return default if request.temperature is None else request.temperature


__all__ = ["ChatService", "OpenAIError"]
