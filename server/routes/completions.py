"""POST /v1/chat/completions and POST /v1/completions: thin routes onto the serving classes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.deps import ChatDep, CompletionsDep
from server.disconnect import cancel_on_disconnect
from server.protocol import ChatCompletionRequest, CompletionRequest
from server.responses import ChatCompletion, Completion
from server.routes.documented import GENERATION, STREAMED_200, responses

router = APIRouter()

RESPONSES = responses(*GENERATION, ok=STREAMED_200)


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
