"""What a request passes before the routes: its id, the key check, the body limit, admission.

Plain ASGI middlewares (not Starlette's BaseHTTPMiddleware, which buffers streams), in the
order `middleware_stack` lists them, outermost first.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import OpenAIError, error_response
from server.metrics import WSDMetrics
from server.settings import ServerConfig
from server.sse import SSE_DONE, sse_error
from wsd_engine.cancellation import cancel_and_wait

logger = logging.getLogger("wsd.server")

# The routes that run engine work: admission, the timeout and aborts apply to them.
GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses"})
RETRY_AFTER_S = 1
TOKENIZER_PATHS = frozenset({"/tokenize", "/detokenize"})

# The id of the request being handled: set for its handler and every task it starts.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def tag_log_records_with_request_ids() -> None:
    """Give every log record a `request_id` attribute: " [<id>]" while a request is being
    handled, else "" (for log formats: `%(name)s%(request_id)s: %(message)s`)."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "tags_request_ids", False):
        return

    def tagged(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        request_id = REQUEST_ID.get()
        record.request_id = f" [{request_id}]" if request_id else ""
        return record

    tagged.tags_request_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(tagged)


@dataclass
class ServerState:
    """What the gate and /health share: requests in flight, and whether the server still
    takes new ones (not while draining, nor after an engine died)."""

    limit: int
    in_flight: int = 0
    draining: bool = False
    failure: OpenAIError | None = None  # why in-flight requests were aborted
    engines_down: dict[str, str] = field(default_factory=dict)  # role -> why (remote engines)
    _abort: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def unavailable(self) -> OpenAIError | None:
        """The error a new request gets, if the server no longer takes requests."""
        if self.failure is not None:
            return self.failure
        if self.draining:
            return OpenAIError(
                "the server is shutting down; retry on another replica",
                HTTPStatus.SERVICE_UNAVAILABLE,
                code="shutting_down",
            )
        return None

    def engine_unavailable(self, roles: Iterable[str]) -> OpenAIError | None:
        """The error a request that needs the engines playing `roles` gets while one of them
        (a remote server) does not answer."""
        for role in roles:
            if role in self.engines_down:
                return OpenAIError(
                    f"the {role} engine is unavailable: {self.engines_down[role]}; retry later",
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    code="engine_unavailable",
                )
        return None

    def abort_all(self, error: OpenAIError) -> None:
        """End every request in flight with `error` (a stream gets it as its last event)."""
        self.failure = error
        self._abort.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight; False if `timeout_s` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def _enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()


def middleware_stack(
    config: ServerConfig, state: ServerState, metrics: WSDMetrics
) -> list[Middleware]:
    """The app's middlewares, outermost first."""
    stack = [Middleware(RequestContext)]
    if config.cors.allowed_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors.allowed_origins),
                allow_methods=list(config.cors.allowed_methods),
                allow_headers=list(config.cors.allowed_headers),
                allow_credentials=config.cors.allow_credentials,
            )
        )
    if config.api_keys:
        stack.append(
            Middleware(APIKeyCheck, keys=config.api_keys, protect_metrics=not config.metrics_public)
        )
    stack.append(Middleware(BodyLimit, max_bytes=config.max_body_bytes))
    stack.append(
        Middleware(Admission, state=state, timeout_s=config.request_timeout_s, metrics=metrics)
    )
    return stack


async def _send_error(error: OpenAIError, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(error)
    if error.status == HTTPStatus.TOO_MANY_REQUESTS:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    if error.status == HTTPStatus.UNAUTHORIZED:
        response.headers["WWW-Authenticate"] = "Bearer"
    await response(scope, receive, send)


class RequestContext:
    """Gives each request an id (the client's `X-Request-Id`, or a new one), returned in the
    response's `X-Request-Id`; an exception that escapes the app becomes a logged 500 naming the
    id, and the connection stays usable for the client's next request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        try:
            await self._handle(scope, receive, send, request_id)
        finally:
            REQUEST_ID.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message).append("X-Request-Id", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("request %s %s failed (request id %s)", scope.get("method"),
                             scope.get("path"), request_id)  # fmt: skip
            if started:
                return  # the response is cut short; the client sees it end early
            error = OpenAIError(
                f"internal server error (request id {request_id})",
                HTTPStatus.INTERNAL_SERVER_ERROR,
            )
            await _send_error(error, scope, receive, send_with_id)


class APIKeyCheck:
    """`Authorization: Bearer <key>` on /v1/*, /tokenize and /detokenize (and /metrics if it
    is not public), compared in constant time with every configured key."""

    def __init__(self, app: ASGIApp, keys: Iterable[str], protect_metrics: bool) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]
        self.protect_metrics = protect_metrics

    def _protected(self, path: str) -> bool:
        if path.startswith("/v1/") or path in TOKENIZER_PATHS:
            return True
        return self.protect_metrics and path == "/metrics"

    def _valid(self, token: str) -> bool:
        given = token.encode()
        matched = False
        for key in self.keys:  # no early exit: the time does not tell which key matched
            matched |= hmac.compare_digest(given, key)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            message = "missing API key: send it as the header 'Authorization: Bearer <key>'"
        elif not self._valid(token.strip()):
            message = "incorrect API key provided"
        else:
            await self.app(scope, receive, send)
            return
        error = OpenAIError(message, HTTPStatus.UNAUTHORIZED, code="invalid_api_key")
        error.error_type = "invalid_request_error"
        await _send_error(error, scope, receive, send)


class BodyLimit:
    """Refuses request bodies larger than `max_bytes` with 413, before they are parsed: at once
    when Content-Length says so; a body sent without it is read up to the limit first."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> OpenAIError:
        return OpenAIError(
            f"request body larger than the server's limit of {self.max_bytes} bytes",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            code="request_too_large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                error = OpenAIError("invalid Content-Length header")
                await _send_error(error, scope, receive, send)
            elif int(declared) > self.max_bytes:
                await _send_error(self._error(), scope, receive, send)
            else:
                await self.app(scope, receive, send)  # the server reads no more than declared
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await _send_error(self._error(), scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


class Admission:
    """Admits at most `state.limit` generation requests at once (more get 429 with
    Retry-After), none while the server drains or after an engine died (503), and ends a
    request that runs past `timeout_s` (504, or an error event if its stream has started) or
    that the server aborts. Ending a request cancels its engine work."""

    def __init__(
        self, app: ASGIApp, state: ServerState, timeout_s: float | None, metrics: WSDMetrics
    ) -> None:
        self.app = app
        self.state = state
        self.timeout_s = timeout_s
        self.metrics = metrics
        metrics.admission_limit.set(state.limit)

    def _refusal(self) -> tuple[OpenAIError, str] | None:
        unavailable = self.state.unavailable
        if unavailable is not None:
            return unavailable, "unavailable"
        if self.state.in_flight >= self.state.limit:
            error = OpenAIError(
                f"the server is at its limit of {self.state.limit} concurrent requests; "
                f"retry after {RETRY_AFTER_S} s",
                HTTPStatus.TOO_MANY_REQUESTS,
                code="server_overloaded",
            )
            return error, "overloaded"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in GENERATION_PATHS:
            await self.app(scope, receive, send)
            return
        refusal = self._refusal()
        if refusal is not None:
            error, reason = refusal
            self.metrics.rejected.labels(reason).inc()
            await _send_error(error, scope, receive, send)
            return
        self.state._enter()
        self.metrics.in_flight.set(self.state.in_flight)
        try:
            await self._run(scope, receive, send)
        finally:
            self.state._leave()
            self.metrics.in_flight.set(self.state.in_flight)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _ResponseProgress(send)

        async def respond() -> None:
            await self.app(scope, receive, response.send)

        work = asyncio.create_task(respond())
        aborted = asyncio.create_task(self.state._abort.wait())
        try:
            done, _ = await asyncio.wait(
                {work, aborted}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            aborted.cancel()
            if not work.done():
                work.cancel()
        if work in done:
            work.result()
            return
        await cancel_and_wait([work])  # cancelled above; its clean-up runs to the end
        if aborted in done and self.state.failure is not None:
            error = self.state.failure
        else:
            error = OpenAIError(
                f"the request ran longer than the server's limit of {self.timeout_s:g} s",
                HTTPStatus.GATEWAY_TIMEOUT,
                code="request_timeout",
                error_type="timeout_error",
            )
        model_name = scope.get("state", {}).get("model_name", "unknown")
        self.metrics.count_error(model_name, int(error.status))
        await response.end_with(error, scope, receive)


class _ResponseProgress:
    """Follows what a response has sent, so that it can be ended with an error at any point."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.event_stream = False
        self.finished = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
            self.event_stream = content_type.startswith("text/event-stream")
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self._send(message)

    async def end_with(self, error: OpenAIError, scope: Scope, receive: Receive) -> None:
        if not self.started:
            await _send_error(error, scope, receive, self._send)
        elif self.event_stream and not self.finished:
            body = (sse_error(error) + SSE_DONE).encode()
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
