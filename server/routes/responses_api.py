"""The Responses API: POST /v1/responses, and GET / DELETE of stored responses and their
input items. Thin routes onto `ResponsesServing`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from server.deps import ResponsesDep
from server.disconnect import cancel_on_disconnect
from server.responses_objects import InputItemList, ResponseDeleted, ResponseObject
from server.responses_protocol import ResponsesRequest
from server.routes.documented import GENERATION, responses
from server.sse import to_json

router = APIRouter()

STREAMED_EVENTS = {
    "description": "The response; with `stream: true`, the Responses event stream (each event "
    "with its `event:` line and a `sequence_number`), ending with response.completed, "
    "response.incomplete or response.failed",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}
STORED = responses(401, 404, 500)


@router.post(
    "/v1/responses", response_model=ResponseObject,
    responses=responses(*GENERATION, ok=STREAMED_EVENTS),
)  # fmt: skip
@cancel_on_disconnect
async def create_response(
    body: ResponsesRequest, request: Request, serving: ResponsesDep
) -> Response:
    """A response from the WSD model, the pilot or the base model."""
    return await serving.handle(body, request)


@router.get("/v1/responses/{response_id}", response_model=ResponseObject, responses=STORED)
async def retrieve_response(response_id: str, serving: ResponsesDep) -> Response:
    """A stored response (404 once it is evicted, deleted or was not stored)."""
    return JSONResponse(to_json(serving.retrieve(response_id), ("wsd",)))


@router.delete("/v1/responses/{response_id}", response_model=ResponseDeleted, responses=STORED)
async def delete_response(response_id: str, serving: ResponsesDep) -> ResponseDeleted:
    """Forget a stored response."""
    return ResponseDeleted(id=serving.delete(response_id))


@router.get(
    "/v1/responses/{response_id}/input_items", response_model=InputItemList,
    responses=responses(400, 401, 404, 500),
)  # fmt: skip
async def list_input_items(
    response_id: str,
    serving: ResponsesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> InputItemList:
    """A stored response's own input items (not the earlier turns'), newest first by default."""
    return serving.input_items(response_id, limit, order, after)
