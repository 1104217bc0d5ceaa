"""The remote adapter's wire formats: engine settings to vLLM request fields, vLLM responses to
the engine protocol's deltas, scores and errors. Pure translation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from http import HTTPStatus
from typing import Any

import httpx

from wsd_engine.engines.protocol import (
    EngineError,
    EngineRequestInvalid,
    EngineUnavailable,
    FinishReason,
    GenerationDelta,
    SamplingSettings,
    Scores,
    StructuredKind,
    StructuredOutput,
    TokenLogprob,
)
from wsd_engine.stop_strings import StopStringFilter

_FINISH_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}
_TOKEN_KEY_PREFIX = "token_id:"


def completion_fields(settings: SamplingSettings) -> dict[str, Any]:
    """A completions request's sampling fields (every one sent: the server's defaults, e.g.
    from the model's generation config, must not apply), stop strings aside."""
    fields: dict[str, Any] = {
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k if settings.top_k > 0 else -1,
        "min_p": settings.min_p,
        "presence_penalty": settings.presence_penalty,
        "frequency_penalty": settings.frequency_penalty,
        "repetition_penalty": settings.repetition_penalty,
        "ignore_eos": settings.ignore_eos,
        "min_tokens": settings.min_tokens,
        "stop_token_ids": list(settings.stop_token_ids),
    }
    if settings.seed is not None:
        fields["seed"] = settings.seed
    if settings.num_logprobs is not None:
        fields["logprobs"] = settings.num_logprobs
    if settings.logit_bias:
        fields["logit_bias"] = {str(token): bias for token, bias in settings.logit_bias}
    if settings.structured is not None:
        fields["structured_outputs"] = _structured_outputs(settings.structured)
    return fields


def stopped_at_strings(delta: GenerationDelta, stops: StopStringFilter) -> GenerationDelta:
    """The delta with the text that may be sent: held back while it may begin a stop string,
    cut at one (the generation then ends, finish reason stop)."""
    if not stops.stop:
        return delta
    text = stops.push(delta.text)
    if stops.is_stopped:
        return replace(delta, text=text, finish_reason=FinishReason.STOP)
    if delta.finish_reason is not None:
        text += stops.flush()
    return replace(delta, text=text)


def _structured_outputs(structured: StructuredOutput) -> dict[str, Any]:
    if structured.kind is StructuredKind.JSON_OBJECT:
        return {"json_object": True}
    return {"json": json.loads(structured.schema or "{}")}


async def sse_payloads(response: httpx.Response, model_name: str) -> AsyncIterator[dict[str, Any]]:
    """The JSON payloads of an event stream, up to `[DONE]`; an error event raises."""
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            return
        payload = json.loads(data)
        if "error" in payload:
            raise _error_from_body(payload, model_name, HTTPStatus.INTERNAL_SERVER_ERROR)
        yield payload


def delta_from_chunk(choice: dict[str, Any]) -> GenerationDelta:
    token_ids = list(choice.get("token_ids") or [])
    reason = choice.get("finish_reason")
    finish = None if reason is None else _FINISH_REASONS.get(reason, FinishReason.ABORT)
    return GenerationDelta(
        token_ids=token_ids,
        text=choice.get("text") or "",
        logprobs=_token_logprobs(token_ids, choice.get("logprobs")),
        finish_reason=finish,
    )


def _token_logprobs(
    token_ids: list[int], logprobs: dict[str, Any] | None
) -> list[TokenLogprob] | None:
    """Completions logprobs (keys "token_id:N") as the protocol's entries."""
    if not logprobs or not logprobs.get("top_logprobs"):
        return None
    result = []
    for token_id, chosen, top in zip(
        token_ids, logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True
    ):
        alternatives = {_token_id(key): value for key, value in (top or {}).items()}
        alternatives.setdefault(token_id, chosen)
        result.append(TokenLogprob(token_id=token_id, logprob=chosen, top=alternatives))
    return result


def _token_id(key: str) -> int:
    return int(key.removeprefix(_TOKEN_KEY_PREFIX))


def cached_tokens(payload: dict[str, Any]) -> int | None:
    details = (payload.get("usage") or {}).get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens")
    return None if cached is None else int(cached)


def scores_from_rows(payload: dict[str, Any], token_ids: Sequence[int], start: int) -> Scores:
    """Scores from a prompt-logprobs pass: row i holds token i's log-probability and the
    rank-1 token at position i; the greedy token after the last one is the pass's output."""
    rows = payload["prompt_logprobs"]
    logprobs = [float(rows[start + i][str(token)]["logprob"]) for i, token in enumerate(token_ids)]
    greedy_next = [
        int(min(rows[start + i].items(), key=lambda item: item[1]["rank"])[0])
        for i in range(1, len(token_ids))
    ]
    greedy_next.append(int(payload["next_token"]))
    return Scores(logprobs=logprobs, greedy_next=greedy_next)


def http_error(response: httpx.Response, model_name: str) -> EngineError:
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"message": response.text[:500]}}
    return _error_from_body(body, model_name, HTTPStatus(response.status_code))


def _error_from_body(body: dict[str, Any], model_name: str, status: HTTPStatus) -> EngineError:
    error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else body
    message = f"{model_name}: {error.get('message') or status.phrase}"
    code = int(error.get("code") or status) if str(error.get("code", "")).isdigit() else status
    if code == HTTPStatus.BAD_REQUEST:
        return EngineRequestInvalid(message, param=error.get("param"))
    if code in (HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.BAD_GATEWAY):
        return EngineUnavailable(message)
    return EngineError(f"{message} (HTTP {int(code)})")


def reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
