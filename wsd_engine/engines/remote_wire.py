"""The remote adapter's wire formats: a vLLM server's responses as the engine protocol's deltas,
scoring passes and errors (the request fields are vLLM's `SamplingParams` names, from
`vllm_common.py`). Pure translation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import httpx

from wsd_engine.engines.engine import (
    EngineError,
    EngineRequestInvalid,
    EngineUnavailable,
    GenerationDelta,
    TokenLogprob,
)
from wsd_engine.engines.vllm_common import ScoringPass, finish_reason

_TOKEN_KEY_PREFIX = "token_id:"


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
    """A streamed completions choice as the protocol's delta."""
    token_ids = list(choice.get("token_ids") or [])
    reason = choice.get("finish_reason")
    finish = None if reason is None else finish_reason(reason)
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
    """The prompt positions a response says were read from the prefix cache."""
    details = (payload.get("usage") or {}).get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens")
    return None if cached is None else int(cached)


def scoring_pass(payload: dict[str, Any], start: int, next_token: int) -> ScoringPass:
    """A prompt-logprobs response (rows keyed by token id strings) from `start` on."""
    rows = [
        {int(token): (float(entry["logprob"]), int(entry["rank"])) for token, entry in row.items()}
        for row in payload["prompt_logprobs"][start:]
    ]
    return ScoringPass(rows, next_token, cached_tokens(payload))


def http_error(response: httpx.Response, model_name: str) -> EngineError:
    """An error answer as the protocol's error."""
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
    """What went wrong, for a message."""
    return str(exc) or type(exc).__name__
