"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from server.deps import ChatDep
from server.protocol import ChatCompletion, ChatCompletionRequest
from server.streaming import race_disconnect, to_json

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, chat: ChatDep
) -> Response:
    """Chat completion with the WSD model, the pilot or the base model."""
    request.state.model_name = body.model
    choices = chat.start(body)
    if body.stream:
        return StreamingResponse(chat.stream(body, choices), media_type="text/event-stream")
    result = await race_disconnect(request, chat.complete(body, choices))
    if result is None:
        return Response(status_code=499)
    return JSONResponse(to_json(result, drop_none=("wsd",)))
