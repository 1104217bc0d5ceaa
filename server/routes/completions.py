"""POST /v1/completions (raw prompts, pilot and base model ids)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from server.deps import CompletionsDep
from server.protocol import Completion, CompletionRequest
from server.streaming import race_disconnect, to_json

router = APIRouter()


@router.post("/v1/completions", response_model=Completion)
async def create_completion(
    body: CompletionRequest, request: Request, completions: CompletionsDep
) -> Response:
    """Text completion of raw prompts by the pilot or the base model."""
    request.state.model_name = body.model
    choices = completions.start(body)
    if body.stream:
        return StreamingResponse(completions.stream(body, choices), media_type="text/event-stream")
    result = await race_disconnect(request, completions.complete(body, choices))
    if result is None:
        return Response(status_code=499)
    return JSONResponse(to_json(result, drop_none=("wsd",)))
