"""The FastAPI application: built by `create_app`, engines started in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from server import __version__
from server.chat import ChatServing
from server.completions import CompletionServing
from server.errors import install_error_handlers
from server.metrics import WSDMetrics
from server.registry import ModelRegistry
from server.routes import completions, health, models
from server.routes import metrics as metrics_route
from wsd_engine.config import AppConfig
from wsd_engine.engines.pair import EnginePair

logger = logging.getLogger("wsd.server")


def create_app(
    config: AppConfig,
    model_paths: dict[str, Path] | None = None,
    engines: EnginePair | None = None,
) -> FastAPI:
    """An app that starts both engines (from `model_paths`) on start-up and stops them on
    shutdown; given running `engines` instead, it uses them and leaves them running."""

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
            app.state.registry = registry
            app.state.chat = ChatServing(registry, metrics)
            app.state.completions = CompletionServing(registry, metrics)
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
        version=__version__,
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(completions.router)
    app.include_router(models.router)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    return app
