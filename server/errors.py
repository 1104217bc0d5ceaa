"""One OpenAI-shaped error type and one exception-to-status map."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wsd_engine.engines.engine import EngineError, EngineRequestInvalid, EngineUnavailable
from wsd_engine.request import RequestError
from wsd_engine.templates import TemplateError

logger = logging.getLogger(__name__)


class OpenAIError(Exception):
    """An error to send as `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        message: str,
        status: HTTPStatus = HTTPStatus.BAD_REQUEST,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.error_type = error_type or _default_type(status)

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI clients parse."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


def _default_type(status: HTTPStatus) -> str:
    if status == HTTPStatus.NOT_FOUND:
        return "not_found_error"
    if status >= 500:
        return "server_error" if status != HTTPStatus.SERVICE_UNAVAILABLE else "service_unavailable"
    return "invalid_request_error"


def to_openai_error(exc: BaseException) -> OpenAIError:
    """Map any exception to the OpenAI error a client should see."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, RequestError):
        return OpenAIError(str(exc), param=exc.param, code=exc.code)
    if isinstance(exc, TemplateError):
        return OpenAIError(str(exc), param="messages")
    if isinstance(exc, EngineRequestInvalid):
        return OpenAIError(str(exc), param=exc.param)
    if isinstance(exc, EngineUnavailable):
        return OpenAIError(str(exc), HTTPStatus.SERVICE_UNAVAILABLE, code="engine_unavailable")
    if isinstance(exc, EngineError):
        return OpenAIError(str(exc), HTTPStatus.INTERNAL_SERVER_ERROR)
    logger.exception("unexpected error", exc_info=exc)
    return OpenAIError(f"internal error: {type(exc).__name__}", HTTPStatus.INTERNAL_SERVER_ERROR)


def error_response(error: OpenAIError) -> JSONResponse:
    """A JSON response carrying an OpenAI error."""
    return JSONResponse(error.body(), status_code=int(error.status))


def _validation_error(exc: RequestValidationError) -> OpenAIError:
    first = _most_specific(list(exc.errors()))
    location = [str(p) for p in first.get("loc", ()) if p != "body" and not _is_union_tag(p)]
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        return OpenAIError(f"invalid JSON body: {first.get('msg', '')}", param=None)
    message = first.get("msg", "invalid request")
    if isinstance(message, str) and message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return OpenAIError(f"{param}: {message}" if param else str(message), param=param)


def _most_specific(errors: list[Any]) -> Any:
    """The error to report: the first, unless all are about one field that takes several
    shapes (a union: pydantic reports each shape's failure); then the one that got deepest
    into the value, e.g. `input.0.role` rather than "input is not a string"."""
    if not errors:
        return {}
    fields = {tuple(error.get("loc", ()))[:2] for error in errors}
    if len(fields) > 1:
        return errors[0]
    return max(errors, key=lambda error: len(error.get("loc", ())))


def _is_union_tag(part: Any) -> bool:
    """A location part naming a union's member (`str`, `list[InputMessage]`), not a field."""
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})


def _http_error(request: Request, exc: StarletteHTTPException) -> OpenAIError:
    """Starlette's routing errors, saying what was asked: a path no route serves, a method the
    route does not take."""
    status = HTTPStatus(exc.status_code)
    asked = f"{request.method} {request.url.path}"
    if status == HTTPStatus.NOT_FOUND and exc.detail == status.phrase:
        return OpenAIError(
            f"no route for {asked}: this server does not serve that path",
            status,
            code="not_found",
        )
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        allowed = (exc.headers or {}).get("Allow", "")
        return OpenAIError(
            f"method {request.method} is not allowed on {request.url.path} (it takes {allowed})",
            status,
            code="method_not_allowed",
        )
    return OpenAIError(str(exc.detail), status)


def count_error(request: Request, error: OpenAIError) -> None:
    """Count an error in the metrics, by the model the request named."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        model = getattr(request.state, "model_name", None) or "unknown"
        metrics.count_error(model, int(error.status))


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app raises leaves as an OpenAI error object, and is counted."""

    def respond(request: Request, error: OpenAIError) -> JSONResponse:
        count_error(request, error)
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if isinstance(exc.body, dict) and isinstance(exc.body.get("model"), str):
            request.state.model_name = exc.body["model"]
        return respond(request, _validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = respond(request, _http_error(request, exc))
        response.headers.update(exc.headers or {})  # a 405's Allow
        return response

    async def _on_known(request: Request, exc: Exception) -> JSONResponse:
        return respond(request, to_openai_error(exc))

    # Specific classes only: anything else escapes to the gate's RequestContext, which logs
    # it and answers 500 (a handler for bare Exception would run in Starlette's outermost
    # middleware, which re-raises and drops the keep-alive connection).
    for known in (OpenAIError, RequestError, TemplateError, EngineError):
        app.add_exception_handler(known, _on_known)
