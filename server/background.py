"""Running the app beside other work: a background event loop and a server started on it.

The test suite and `wsd bench` both need the engines, the HTTP server and their own code on
one event loop while a client runs elsewhere; this is that loop.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class BackgroundLoop:
    """An event loop in a daemon thread; coroutines are submitted to it from anywhere."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wsd-loop", daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Run a coroutine on this loop; await the result from another loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on this loop and block until it is done."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        """Stop the loop and join its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def wait_ready(
    url: str,
    process: subprocess.Popen[Any] | None = None,
    timeout_s: float = 900,
    poll_s: float = 1.0,
) -> None:
    """Block until GET `url` answers 200; raise if `process` (the server behind it) exits or
    `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(poll_s)
    raise TimeoutError(f"{url} did not answer within {timeout_s:g} s")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_server(server: Any) -> asyncio.Task[None]:
    """Start a uvicorn.Server on the running loop; return once it accepts connections."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    return task
