"""cancel_and_wait: background work is cancelled once, and its clean-up runs to its end even
when the waiter is cancelled over and over (as Starlette's cancel scopes do)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from wsd_engine.cancellation import cancel_and_wait


class Work:
    """A task whose clean-up takes a few awaits, like an engine abort or an HTTP close."""

    def __init__(self) -> None:
        self.cleaned_up = asyncio.Event()
        self.cancellations = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancellations += 1
            raise
        finally:
            for _ in range(3):
                await asyncio.sleep(0)
            self.cleaned_up.set()


async def test_the_clean_up_ends_although_the_waiter_is_cancelled_again_and_again():
    work = Work()
    await asyncio.sleep(0)
    with anyio.CancelScope() as scope:  # re-cancels every await inside it, as Starlette's do
        scope.cancel()
        try:
            await asyncio.sleep(60)
        finally:
            await cancel_and_wait([work.task])
    await asyncio.wait_for(work.cleaned_up.wait(), timeout=1)
    assert work.cancellations == 1


async def test_without_cancellation_the_wait_lasts_until_the_clean_up_is_done():
    work = Work()
    await asyncio.sleep(0)
    await cancel_and_wait([work.task])
    assert work.cleaned_up.is_set() and work.task.cancelled()


async def test_a_task_already_cancelled_is_not_cancelled_again():
    work = Work()
    await asyncio.sleep(0)
    work.task.cancel()  # e.g. the pilot, stopped at the switch, still closing its stream
    await cancel_and_wait([work.task])
    assert work.cancellations == 1 and work.cleaned_up.is_set()


async def test_errors_of_the_tasks_are_retrieved_and_not_raised(caplog):
    async def fail() -> None:
        raise RuntimeError("engine failed")

    failed = asyncio.create_task(fail())
    running = Work()
    await asyncio.sleep(0)
    assert failed.done()
    await cancel_and_wait([failed, running.task])
    assert isinstance(failed.exception(), RuntimeError) and running.cleaned_up.is_set()
    del failed, running
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text


@pytest.mark.parametrize("tasks", [[], "finished"])
async def test_nothing_to_wait_for(tasks):
    if tasks == "finished":
        done = asyncio.create_task(asyncio.sleep(0))
        await done
        tasks = [done]
    await asyncio.wait_for(cancel_and_wait(tasks), timeout=1)
