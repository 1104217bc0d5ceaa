"""Running the app: a graceful drain on SIGTERM, and a non-zero exit when an engine dies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from server.errors import OpenAIError
from server.gate import ServerState
from server.settings import AppConfig

logger = logging.getLogger("wsd.server")

# After the drain, uvicorn's own shutdown waits at most this long for connections to close.
CLOSE_TIMEOUT_S = 5
# After the drain deadline has aborted the requests left, how long they get to end.
ABORT_GRACE_S = 5.0
EXIT_ENGINE_DEATH = 1


class GracefulServer(uvicorn.Server):
    """uvicorn's server, draining on the first SIGTERM or SIGINT.

    Draining: new completion requests get 503 and /health turns 503 (so a load balancer
    stops sending), requests in flight may finish until `drain_timeout_s`, then those left
    are aborted (a stream ends with an error event); then the server stops, the engines shut
    down, and the process exits 0. A second signal stops at once.
    """

    def __init__(self, config: uvicorn.Config, state: ServerState, drain_timeout_s: float):
        super().__init__(config)
        self.state = state
        self.drain_timeout_s = drain_timeout_s
        self.exit_code = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn re-raises the signals it captured once stopped (exit status 128 + signal);
        # a drained server exits 0 instead, so the signal is not recorded.
        if self._loop is None or self._drain is not None or self.should_exit:
            self.should_exit = True
            self.force_exit = self._drain is not None
            return
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.create_task(self.drain())

    async def drain(self) -> None:
        """Refuse new requests, let those in flight end (or abort them at the deadline), stop."""
        self.state.draining = True
        logger.info(
            "draining: %d requests in flight may finish within %g s; new ones get 503",
            self.state.in_flight, self.drain_timeout_s,
        )  # fmt: skip
        if not await self.state.wait_idle(self.drain_timeout_s):
            logger.warning("drain deadline passed: aborting %d requests", self.state.in_flight)
            self.state.abort_all(
                OpenAIError(
                    "the server shut down before the request finished",
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    code="shutting_down",
                )
            )
            await self.state.wait_idle(ABORT_GRACE_S)
        logger.info("drained; stopping")
        self.should_exit = True

    def engine_died(self) -> None:
        """Stop with a non-zero exit status, so that a supervisor restarts the server."""
        logger.error("an engine died: stopping (exit status %d)", EXIT_ENGINE_DEATH)
        self.exit_code = EXIT_ENGINE_DEATH
        self.should_exit = True


def run(config: AppConfig, build_app: Callable[[Callable[[], None]], FastAPI]) -> int:
    """Serve the app `build_app(on_engine_death)` returns until it is stopped; the exit status."""
    server: GracefulServer | None = None

    def on_engine_death() -> None:
        assert server is not None
        server.engine_died()

    app = build_app(on_engine_death)
    uvicorn_config = uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port,
        log_level="info",
        timeout_graceful_shutdown=CLOSE_TIMEOUT_S,
    )
    server = GracefulServer(uvicorn_config, app.state.server, config.server.drain_timeout_s)
    server.run()
    if server.exit_code == 0 and not server.started:
        return 1  # start-up failed (uvicorn has logged why)
    return server.exit_code
