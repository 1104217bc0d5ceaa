"""Cancelling background tasks so that their clean-up runs to its end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel each unfinished task that is not being cancelled already, then wait until
    every task has finished.

    A task's clean-up takes awaits: vLLM's abort, closing an HTTP stream to a vLLM server.
    Waiting with `await task` would hand a cancellation of the waiter on to the task, and
    under Starlette a cancelled response is cancelled again at each of its awaits (anyio's
    cancel scopes): the task would be cancelled a second time inside its clean-up, which
    then stops half-way and leaves the request running on the engine. `asyncio.wait` hands
    nothing on: if the waiter is cancelled it stops waiting, and the tasks still finish.

    The tasks' own errors and cancellations are not raised here.
    """
    tasks = list(tasks)
    for task in tasks:
        task.add_done_callback(_retrieve)
        cancel_once(task)
    pending = [task for task in tasks if not task.done()]
    if pending:
        await asyncio.wait(pending)


def cancel_once(task: asyncio.Task[Any]) -> None:
    """Cancel a task unless it has finished or is being cancelled: a second cancellation
    would land in the clean-up of the first (see `cancel_and_wait`)."""
    if not task.done() and not task.cancelling():
        task.cancel()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a task's error as seen (asyncio logs errors nobody retrieved)."""
    if not task.cancelled():
        task.exception()
