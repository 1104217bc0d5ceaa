"""Shared fixtures: the embedded config, prepared model paths, one real engine pair per session."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from wsd_engine.config import AppConfig, load_config
from wsd_engine.models.prepare import prepare_config

T = TypeVar("T")
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


class EngineLoop:
    """A background thread running the event loop that owns the session's engines.

    The engines (and the test server) live on this loop; tests await work on it with
    `call`, from their own loop. Cancelling the awaiting task cancels the work.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="engine-loop", daemon=True
        )
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Run a coroutine on the engine loop; await the result from any loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the engine loop and block until it is done."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def engine_loop() -> Iterator[EngineLoop]:
    loop = EngineLoop()
    yield loop
    loop.stop()


@pytest.fixture(scope="session")
def engine_pair(
    embedded_config: AppConfig, model_paths: dict[str, Path], engine_loop: EngineLoop
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(
    embedded_config: AppConfig,
    model_paths: dict[str, Path],
    engine_pair: Any,
    engine_loop: EngineLoop,
) -> Iterator[LiveServer]:
    """The real HTTP server on a free loopback port, on the session's engines."""
    import uvicorn

    from server.app import create_app

    port = _free_port()
    app = create_app(embedded_config, model_paths, engines=engine_pair)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = engine_loop.run(_start_server(server))
    yield LiveServer(base_url=f"http://127.0.0.1:{port}", port=port)
    server.should_exit = True
    engine_loop.run(asyncio.wait_for(task, timeout=30))


async def _start_server(server: Any) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    return task
