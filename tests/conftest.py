"""Shared fixtures.

Fast tests run on tiny in-process tokenizers and scripted engines. Tests marked `slow` use the
prepared embedded models: their real tokenizers, and one real engine pair per test session
on a background event loop that also hosts the test server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.background import BackgroundLoop, free_port, start_server
from server.settings import AppConfig, load_config
from tests.fakes.tiny_tokenizers import tiny_base_tokenizer, tiny_pilot_tokenizer
from wsd_engine.weights.prepare import prepare_config

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_CONFIG = REPO_ROOT / "configs" / "embedded.yaml"


@dataclass(frozen=True)
class Tokenizers:
    pilot: Any
    base: Any


@pytest.fixture(scope="session")
def embedded_config() -> AppConfig:
    return load_config(EMBEDDED_CONFIG, environ={})


@pytest.fixture(scope="session")
def ids(embedded_config: AppConfig) -> dict[str, str]:
    """Model id by what answers: wsd, pilot, base."""
    return {
        "wsd": embedded_config.wsd.served_model_name,
        "pilot": embedded_config.pilot.served_model_name,
        "base": embedded_config.base.served_model_name,
    }


@pytest.fixture(scope="session")
def model_paths(embedded_config: AppConfig) -> dict[str, Path]:
    """Served id -> prepared directory (prepares on first use, then cached)."""
    return prepare_config(embedded_config)


@pytest.fixture(scope="session")
def embedded_tokenizers(embedded_config: AppConfig, model_paths: dict[str, Path]) -> Tokenizers:
    from transformers import AutoTokenizer

    def load(name: str) -> Any:
        return AutoTokenizer.from_pretrained(model_paths[name])

    return Tokenizers(
        load(embedded_config.pilot.served_model_name), load(embedded_config.base.served_model_name)
    )


@pytest.fixture(
    scope="session",
    params=["tiny", pytest.param("embedded", marks=pytest.mark.slow)],
)
def tokenizers(request: pytest.FixtureRequest) -> Tokenizers:
    """Tiny trained tokenizers of the same kinds as the embedded models' (fast), and the
    embedded models' own (slow: they need the prepared models)."""
    if request.param == "tiny":
        return Tokenizers(tiny_pilot_tokenizer(), tiny_base_tokenizer())
    return request.getfixturevalue("embedded_tokenizers")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def pilot_tokenizer(tokenizers: Tokenizers) -> Any:
    return tokenizers.pilot


@pytest.fixture(scope="session")
def base_tokenizer(tokenizers: Tokenizers) -> Any:
    return tokenizers.base


@pytest.fixture(scope="session")
def server_loop() -> Iterator[BackgroundLoop]:
    """The loop that owns the session's engines and test servers; tests await work on it."""
    loop = BackgroundLoop()
    yield loop
    loop.stop()


@pytest.fixture(scope="session")
def engine_pair(
    embedded_config: AppConfig, model_paths: dict[str, Path], server_loop: BackgroundLoop
) -> Iterator[Any]:
    """The real pilot and base vLLM engines, started once per test session."""
    from wsd_engine.engines.pair import EnginePair

    pair = EnginePair.start(embedded_config, model_paths)
    server_loop.run(pair.warm_up())
    yield pair
    pair.shutdown()


@dataclass
class LiveServer:
    base_url: str
    port: int
    engines: Any


def serve(app: Any, loop: BackgroundLoop, engines: Any) -> Iterator[LiveServer]:
    """Run an app on a free loopback port on `loop` until the generator is closed."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = loop.run(start_server(server))
    yield LiveServer(base_url=f"http://127.0.0.1:{port}", port=port, engines=engines)
    server.should_exit = True
    loop.run(asyncio.wait_for(task, timeout=30))


@pytest.fixture(scope="session")
def live_server(
    embedded_config: AppConfig,
    model_paths: dict[str, Path],
    engine_pair: Any,
    server_loop: BackgroundLoop,
) -> Iterator[LiveServer]:
    """The real HTTP server on a free loopback port, on the session's real engines."""
    from server.app import create_app

    app = create_app(embedded_config, model_paths, engines=engine_pair)
    yield from serve(app, server_loop, engine_pair)
