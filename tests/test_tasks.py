"""evsed.tasks.cancel_and_wait: shutdown must end tasks that swallowed a cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from evsed.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def poll_forever() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                # What Python 3.11's asyncio.wait_for does when the result and the cancel
                # arrive together: the loop carries on as if nothing happened.
                swallowed += 1
                if swallowed > 1:
                    raise

    task = asyncio.create_task(poll_forever())
    await asyncio.sleep(0.02)
    async with asyncio.timeout(2):
        await cancel_and_wait([task])
    assert task.cancelled() and swallowed == 2


async def test_finished_and_failed_tasks_are_waited_for_and_failures_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fail() -> None:
        raise RuntimeError("broken loop")

    async def done() -> None:
        return None

    tasks = [asyncio.create_task(fail(), name="broken"), asyncio.create_task(done())]
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="evsed.tasks"):
        await cancel_and_wait(tasks)
    assert all(task.done() for task in tasks)
    assert "task broken had failed" in caplog.text
