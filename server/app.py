"""The FastAPI application: built by `create_app`, engines started in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from server.chat import ChatService
from server.completions import CompletionService
from server.errors import install_error_handlers
from server.metrics import WSDMetrics
from server.models import ModelRegistry
from server.routes import chat, completions, models
from server.routes import metrics as metrics_route
from wsd_engine.config import AppConfig
from wsd_engine.engines.pair import EnginePair

logger = logging.getLogger("wsd.server")


def create_app(
    config: AppConfig,
    model_paths: dict[str, Path],
    engines: EnginePair | None = None,
) -> FastAPI:
    """An app that starts both engines on start-up and stops them on shutdown.

    Given running `engines`, the app uses them and leaves them running (tests share one pair).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for model in (config.pilot, config.base):
            logger.info(
                "model %s from %s", model.served_model_name, model_paths[model.served_model_name]
            )
        owned = engines is None
        pair = engines or await asyncio.to_thread(EnginePair.start, config, model_paths)
        try:
            await pair.warm_up()
            registry = ModelRegistry(config, pair)
            app.state.registry = registry
            app.state.chat = ChatService(registry, metrics)
            app.state.completions = CompletionService(registry, metrics)
            logger.info(
                "ready: serving %s on http://%s:%d/v1",
                ", ".join(registry.models),
                config.server.host,
                config.server.port,
            )
            yield
        finally:
            if owned:
                pair.shutdown()

    metrics = WSDMetrics(config)
    app = FastAPI(
        title="WSD Server",
        description="OpenAI-compatible Weak-to-Strong Decoding: a small aligned pilot drafts "
        "the beginning, a large base model takes over at the switch point.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(chat.router)
    app.include_router(completions.router)
    app.include_router(models.router)
    app.include_router(metrics_route.router)
    return app
