"""FastAPI dependencies: objects built in the lifespan, read from app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.registry import ModelRegistry
from server.serving_chat import ChatServing
from server.serving_completion import CompletionServing
from server.serving_responses import ResponsesServing


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry  # type: ignore[no-any-return]


def _chat(request: Request) -> ChatServing:
    return request.app.state.chat  # type: ignore[no-any-return]


def _responses(request: Request) -> ResponsesServing:
    return request.app.state.responses  # type: ignore[no-any-return]


def _completions(request: Request) -> CompletionServing:
    return request.app.state.completions  # type: ignore[no-any-return]


RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
ChatDep = Annotated[ChatServing, Depends(_chat)]
CompletionsDep = Annotated[CompletionServing, Depends(_completions)]
ResponsesDep = Annotated[ResponsesServing, Depends(_responses)]
