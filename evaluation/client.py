"""Talking to an OpenAI-compatible endpoint: one streamed chat answer, timed on the client's
clock, or one plain completion (the judge); retries with backoff on 429, 502, 503 and broken
connections, a timeout per request."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httpx

logger = logging.getLogger("wsd.eval")

# Statuses worth another try: the server is busy or restarting, not the request wrong.
RETRY_STATUSES = frozenset({HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.BAD_GATEWAY,
                            HTTPStatus.SERVICE_UNAVAILABLE})  # fmt: skip
# Connection failures worth another try (a read timeout is not: the request may still run).
RETRY_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
                httpx.ReadError, httpx.WriteError)  # fmt: skip


class RequestFailed(RuntimeError):
    """The endpoint refused a request, or kept failing after every retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Retry(Exception):
    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.after_s = after_s


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is tried."""

    attempts: int = 6
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    timeout_s: float = 600.0  # one request, to its last byte

    def delay_s(self, attempt: int, after_s: float | None) -> float:
        """The wait before try `attempt + 1`: the server's Retry-After, or exponential with
        jitter."""
        if after_s is not None:
            return min(after_s, self.max_delay_s)
        backoff = self.first_delay_s * 2**attempt
        return float(min(backoff * (0.5 + random.random()), self.max_delay_s))


@dataclass
class StreamedAnswer:
    """One chat answer as a client received it."""

    text: str
    finish_reason: str | None
    usage: dict[str, int]
    wsd: dict[str, Any] | None
    ttft_s: float | None
    e2e_s: float


class ChatClient:
    """Chat requests to OpenAI-compatible endpoints (one connection pool for all)."""

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.policy.timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=None, keepalive_expiry=2.0),
        )
        self.retries = 0  # tries that failed and were repeated, over all requests

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def stream_chat(
        self, base_url: str, body: dict[str, Any], api_key: str | None = None
    ) -> StreamedAnswer:
        """One streamed chat completion, read to its end (with usage, and the `wsd` object
        when the endpoint is a WSD server)."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        return await self._with_retries(lambda: self._stream_once(base_url, body, api_key))

    async def complete(
        self, base_url: str, body: dict[str, Any], api_key: str | None = None
    ) -> str:
        """One non-streamed chat completion's text (the judge's verdicts)."""
        body = {**body, "stream": False}

        async def once() -> str:
            response = await self._http.post(
                _chat_url(base_url), json=body, headers=_headers(api_key),
                timeout=self.policy.timeout_s,
            )  # fmt: skip
            _check_status(response.status_code, response.text, response.headers)
            return str(response.json()["choices"][0]["message"]["content"] or "")

        return await self._with_retries(once)

    async def model_ids(self, base_url: str, api_key: str | None = None) -> list[str]:
        """The endpoint's model ids, in its order (GET /models)."""

        async def once() -> list[str]:
            response = await self._http.get(f"{base_url.rstrip('/')}/models",
                                            headers=_headers(api_key))  # fmt: skip
            _check_status(response.status_code, response.text, response.headers)
            return [str(card["id"]) for card in response.json()["data"]]

        return await self._with_retries(once)

    async def _with_retries(self, once: Any) -> Any:
        policy = self.policy
        for attempt in range(policy.attempts):
            try:
                return await once()
            except _Retry as retry:
                reason, after_s = str(retry), retry.after_s
            except RETRY_ERRORS as exc:
                reason, after_s = f"{type(exc).__name__}: {exc}", None
            if attempt + 1 == policy.attempts:
                raise RequestFailed(f"gave up after {policy.attempts} tries: {reason}")
            self.retries += 1
            delay = policy.delay_s(attempt, after_s)
            logger.info("%s; trying again in %.1f s", reason, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _stream_once(
        self, base_url: str, body: dict[str, Any], api_key: str | None
    ) -> StreamedAnswer:
        started = time.monotonic()
        text, finish, wsd, ttft = "", None, None, None
        usage: dict[str, int] = {}
        request = self._http.build_request(
            "POST", _chat_url(base_url), json=body, headers=_headers(api_key)
        )
        response = await self._http.send(request, stream=True)
        try:
            if response.status_code != HTTPStatus.OK:
                await response.aread()
                _check_status(response.status_code, response.text, response.headers)
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line.removeprefix("data: "))
                if "error" in chunk:  # the stream failed after it started: try again
                    raise _Retry(f"in-stream error: {chunk['error'].get('message')}")
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece and ttft is None:
                        ttft = time.monotonic() - started
                    text += piece
                    finish = choice.get("finish_reason") or finish
                    wsd = choice.get("wsd") or wsd
        finally:
            await response.aclose()
        return StreamedAnswer(text, finish, usage, wsd, ttft, time.monotonic() - started)


def _chat_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/chat/completions"


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _check_status(status: int, text: str, headers: httpx.Headers) -> None:
    """Nothing for a 200; a retry for a busy server; a RequestFailed naming the error else."""
    if status == HTTPStatus.OK:
        return
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = text[:300]
    if status in RETRY_STATUSES:
        after = headers.get("retry-after", "")
        seconds = float(after) if after.replace(".", "", 1).isdigit() else None  # or a date
        raise _Retry(f"HTTP {status}: {message}", seconds)
    raise RequestFailed(f"HTTP {status}: {message}", status)
