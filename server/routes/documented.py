"""The statuses each route answers, for the OpenAPI document: every error as sent (an OpenAI
error object), so a client generated from the document knows each one."""

from __future__ import annotations

from typing import Any

from server.responses import ErrorResponse

ERRORS = {
    400: "invalid request (the error's `param` names the field)",
    401: "missing or wrong API key (when keys are configured)",
    404: "unknown model id",
    413: "request body over the server's limit",
    429: "the server's bound on requests in flight is reached; retry after `Retry-After`",
    500: "a bug: logged with the request id, which the message names",
    503: "an engine died or does not answer, or the server is draining",
    504: "the request ran past the server's timeout",
}
# What a route that runs engine work answers; the others answer fewer.
GENERATION = (400, 401, 404, 413, 429, 500, 503, 504)
STREAMED_200: dict[str, Any] = {
    "description": "The answer; with `stream: true`, server-sent events ending with `data: [DONE]`",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def responses(*statuses: int, ok: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route: its 200 (if it needs more than the response model) and the
    errors it can answer."""
    documented: dict[int | str, dict[str, Any]] = {} if ok is None else {200: ok}
    for status in statuses:
        documented[status] = {"model": ErrorResponse, "description": ERRORS[status]}
    return documented
