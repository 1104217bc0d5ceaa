"""The FastAPI application: built by `create_app`, engines started in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from server import __version__
from server.errors import OpenAIError, install_error_handlers
from server.gate import ServerState, middleware_stack, tag_log_records_with_request_ids
from server.metrics import WSDMetrics
from server.registry import ModelRegistry
from server.response_store import ResponseStore
from server.routes import (
    completions,
    health,
    models,
    playground,
    prometheus,
    responses_api,
    tokenize,
)
from server.serving_chat import ChatServing
from server.serving_completion import CompletionServing
from server.serving_responses import ResponsesServing
from server.settings import AppConfig
from wsd_engine.config import Role
from wsd_engine.engines.pair import EnginePair

logger = logging.getLogger("wsd.server")

ENGINE_WATCH_INTERVAL_S = 0.5


def create_app(
    config: AppConfig,
    model_paths: dict[str, Path] | None = None,
    engines: EnginePair | None = None,
    on_engine_death: Callable[[], None] | None = None,
) -> FastAPI:
    """An app that starts both engines (from `model_paths`) on start-up and stops them on
    shutdown; given running `engines` instead, it uses them and leaves them running.

    When an engine dies, requests in flight end with a 503 error, /health turns 503 and
    `on_engine_death` is called (the CLI makes the process exit non-zero) if the config says so.
    """

    async def start_engines() -> EnginePair:
        if engines is not None:
            return engines
        if model_paths is None:
            raise ValueError("create_app needs model_paths or running engines")
        for model in (config.pilot, config.base):
            path = model_paths[model.served_model_name]
            logger.info("model %s from %s", model.served_model_name, path)
        return await asyncio.to_thread(EnginePair.start, config, model_paths)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engines is None
        pair = await start_engines()
        try:
            await pair.warm_up()
            registry = ModelRegistry(config, pair)
            metrics.watch_engines(pair.pilot, pair.base)
            app.state.registry = registry
            app.state.chat = ChatServing(registry, metrics)
            app.state.completions = CompletionServing(registry, metrics)
            store = ResponseStore(
                config.server.response_store_size, config.server.response_store_max_age_s
            )
            app.state.responses = ResponsesServing(registry, metrics, app.state.chat, store)
            watcher = asyncio.create_task(watch_engines(pair, state, engine_died))
            logger.info(
                "ready: serving %s on http://%s:%d/v1",
                ", ".join(registry.models),
                config.server.host,
                config.server.port,
            )
            yield
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        finally:
            if owned:
                pair.shutdown()

    def engine_died() -> None:
        if on_engine_death is not None and config.server.exit_on_engine_death:
            on_engine_death()

    tag_log_records_with_request_ids()
    metrics = WSDMetrics(config)
    state = ServerState(limit=config.server.max_concurrent_requests)
    docs = config.server.docs
    app = FastAPI(
        title="WSD Server",
        description="OpenAI-compatible Weak-to-Strong Decoding: a small aligned pilot drafts "
        "the beginning, a large base model takes over at the switch point.",
        version=__version__,
        lifespan=lifespan,
        middleware=middleware_stack(config.server, state, metrics),
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.metrics = metrics
    app.state.server = state
    _document_errors_as_sent(app)
    install_error_handlers(app)
    app.include_router(completions.router)
    app.include_router(responses_api.router)
    app.include_router(models.router)
    app.include_router(tokenize.router)
    app.include_router(health.router)
    app.include_router(prometheus.router)
    if config.server.playground:
        playground.install(app)
    return app


async def watch_engines(pair: EnginePair, state: ServerState, died: Callable[[], None]) -> None:
    """Poll both engines. When an in-process engine is dead, abort the requests in flight and
    report it; a remote server that stops answering only turns away the requests that need
    it (`state.engines_down`) until it answers again."""
    engines = {Role.PILOT.value: pair.pilot, Role.BASE.value: pair.base}
    while True:
        await asyncio.sleep(ENGINE_WATCH_INTERVAL_S)
        results = await asyncio.gather(
            *(engine.check_health() for engine in engines.values()), return_exceptions=True
        )
        for (role, engine), result in zip(engines.items(), results, strict=True):
            if isinstance(result, BaseException) and not engine.recovers:
                logger.error("engine failure, ending the requests in flight: %s", result)
                state.abort_all(
                    OpenAIError(
                        f"engine failure: {result}",
                        HTTPStatus.SERVICE_UNAVAILABLE,
                        code="engine_dead",
                    )
                )
                died()
                return
            _note_remote_health(state, role, result)


def _note_remote_health(state: ServerState, role: str, result: BaseException | None) -> None:
    was_down = role in state.engines_down
    if result is None:
        if was_down:
            logger.info("the %s engine answers again: serving requests that need it", role)
            del state.engines_down[role]
        return
    state.engines_down[role] = str(result)
    if not was_down:
        logger.warning(
            "%s; requests that need the %s engine get 503 until it answers", result, role
        )


def _document_errors_as_sent(app: FastAPI) -> None:
    """FastAPI documents a 422 validation error for every body; this server answers 400 with
    an OpenAI error object instead (the routes document it), so the 422 leaves the document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
