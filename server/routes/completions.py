"""POST /v1/chat/completions and POST /v1/completions: thin routes onto the serving classes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.deps import ChatDep, CompletionsDep
from server.disconnect import cancel_on_disconnect
from server.protocol import ChatCompletion, ChatCompletionRequest, Completion, CompletionRequest

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletion)
@cancel_on_disconnect
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, chat: ChatDep
) -> Response:
    """Chat completion with the WSD model, the pilot or the base model."""
    return await chat.respond(body, request)


@router.post("/v1/completions", response_model=Completion)
@cancel_on_disconnect
async def create_completion(
    body: CompletionRequest, request: Request, completions: CompletionsDep
) -> Response:
    """Text completion of raw prompts by the pilot or the base model."""
    return await completions.respond(body, request)
