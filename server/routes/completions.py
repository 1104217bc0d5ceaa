"""POST /v1/chat/completions and POST /v1/completions: thin routes onto the serving classes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from server.deps import ChatDep, CompletionsDep
from server.disconnect import cancel_on_disconnect
from server.protocol import ChatCompletionRequest, CompletionRequest
from server.responses import ChatCompletion, Completion, ErrorResponse

router = APIRouter()

_ERRORS = {
    400: "invalid request (the error's `param` names the field)",
    401: "missing or wrong API key (when keys are configured)",
    404: "unknown model id",
    413: "request body over the server's limit",
    429: "the server's bound on requests in flight is reached; retry after `Retry-After`",
    503: "an engine died, or the server is draining",
    504: "the request ran past the server's timeout",
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer; with `stream: true`, server-sent events ending with "
        "`data: [DONE]`",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **{status: {"model": ErrorResponse, "description": text} for status, text in _ERRORS.items()},
}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=RESPONSES)
@cancel_on_disconnect
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, chat: ChatDep
) -> Response:
    """Chat completion with the WSD model, the pilot or the base model."""
    return await chat.handle(body, request)


@router.post("/v1/completions", response_model=Completion, responses=RESPONSES)
@cancel_on_disconnect
async def create_completion(
    body: CompletionRequest, request: Request, completions: CompletionsDep
) -> Response:
    """Text completion of raw prompts by the pilot or the base model."""
    return await completions.handle(body, request)
