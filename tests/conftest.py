"""Shared fixtures: the embedded config, prepared model paths, one real engine pair per session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.background import BackgroundLoop, free_port, start_server
from wsd_engine.config import AppConfig, load_config
from wsd_engine.models.prepare import prepare_config

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_CONFIG = REPO_ROOT / "configs" / "embedded.yaml"


@pytest.fixture(scope="session")
def embedded_config() -> AppConfig:
    return load_config(EMBEDDED_CONFIG, environ={})


@pytest.fixture(scope="session")
def model_paths(embedded_config: AppConfig) -> dict[str, Path]:
    """Served id -> prepared directory (prepares on first use, then cached)."""
    return prepare_config(embedded_config)


@pytest.fixture(scope="session")
def pilot_tokenizer(embedded_config: AppConfig, model_paths: dict[str, Path]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_paths[embedded_config.pilot.served_model_name])


@pytest.fixture(scope="session")
def base_tokenizer(embedded_config: AppConfig, model_paths: dict[str, Path]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_paths[embedded_config.base.served_model_name])


@pytest.fixture(scope="session")
def engine_loop() -> Iterator[BackgroundLoop]:
    """The loop that owns the session's engines and test server; tests await work on it."""
    loop = BackgroundLoop()
    yield loop
    loop.stop()


@pytest.fixture(scope="session")
def engine_pair(
    embedded_config: AppConfig, model_paths: dict[str, Path], engine_loop: BackgroundLoop
) -> Iterator[Any]:
    """The real pilot and base vLLM engines, started once per test session."""
    from wsd_engine.engines.pair import EnginePair

    pair = EnginePair.start(embedded_config, model_paths)
    engine_loop.run(pair.warm_up())
    yield pair
    pair.shutdown()


@dataclass
class LiveServer:
    base_url: str
    port: int


@pytest.fixture(scope="session")
def live_server(
    embedded_config: AppConfig,
    model_paths: dict[str, Path],
    engine_pair: Any,
    engine_loop: BackgroundLoop,
) -> Iterator[LiveServer]:
    """The real HTTP server on a free loopback port, on the session's engines."""
    import uvicorn

    from server.app import create_app

    port = free_port()
    app = create_app(embedded_config, model_paths, engines=engine_pair)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = engine_loop.run(start_server(server))
    yield LiveServer(base_url=f"http://127.0.0.1:{port}", port=port)
    server.should_exit = True
    engine_loop.run(asyncio.wait_for(task, timeout=30))
