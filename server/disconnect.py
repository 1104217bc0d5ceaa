"""Cancel a handler's work when its client disconnects before the response is ready."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response

from wsd_engine.cancellation import cancel_and_wait

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the response


Handler = Callable[..., Coroutine[Any, Any, Response]]


def cancel_on_disconnect(handler: Handler) -> Handler:
    """Run the handler, racing it against the client's disconnect: a client that leaves
    cancels the handler (and with it every engine request it started).

    The handler must take the `Request` as its `request` argument. A streamed response is
    returned at once; Starlette cancels its body when the client leaves.
    """

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        request: Request = kwargs["request"]
        work = asyncio.create_task(handler(*args, **kwargs))
        watcher = asyncio.create_task(_disconnected(request))
        try:
            done, _ = await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                return work.result()
            await cancel_and_wait([work])
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        finally:
            watcher.cancel()
            if not work.done():
                work.cancel()

    return wrapper


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
