"""Server-sent events, and merging the event streams of concurrent choices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from pydantic import BaseModel

from server.errors import OpenAIError
from wsd_engine.cancellation import cancel_and_wait
from wsd_engine.request import WSD_OPT_IN_FIELDS

T = TypeVar("T")
_DONE = object()


def to_json(payload: BaseModel, drop_none: tuple[str, ...] = ()) -> dict[str, Any]:
    """A response body: OpenAI's nulls kept, our optional extensions (`drop_none`) left out
    when null, and stream deltas carrying only what they have."""
    data = payload.model_dump()
    for choice in data.get("choices", []):
        if isinstance(choice.get("delta"), dict):
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
    for key in drop_none:
        if key in data and data[key] is None:
            del data[key]
        for choice in data.get("choices", []):
            if key in choice and choice[key] is None:
                del choice[key]
    for wsd in [data.get("wsd"), *(choice.get("wsd") for choice in data.get("choices", []))]:
        for key in WSD_OPT_IN_FIELDS:
            if isinstance(wsd, dict) and wsd.get(key, 0) is None:
                del wsd[key]
    return data


def sse(payload: BaseModel, drop_none: tuple[str, ...] = ()) -> str:
    """One `data:` event."""
    return f"data: {json.dumps(to_json(payload, drop_none), ensure_ascii=False)}\n\n"


def sse_error(error: OpenAIError) -> str:
    """A mid-stream failure, as vLLM and OpenAI send it."""
    return f"data: {json.dumps(error.body())}\n\n"


SSE_DONE = "data: [DONE]\n\n"


async def merge(streams: list[AsyncIterator[T]]) -> AsyncIterator[T]:
    """Interleave several async iterators as their items arrive; closing cancels them all."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump(stream: AsyncIterator[T]) -> None:
        try:
            async for item in stream:
                await queue.put(item)
            await queue.put(_DONE)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await queue.put(exc)

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        await cancel_and_wait(tasks)
