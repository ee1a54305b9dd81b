"""Ending asyncio tasks for good, even when a library swallowed the cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

RECANCEL_S = 0.1


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel ``tasks`` and return once every one of them has ended.

    One ``cancel()`` is not always enough on Python 3.11: ``asyncio.wait_for`` (used inside
    pymodbus and the ``ocpp`` library) returns the inner result instead of raising when the
    result and the cancellation arrive in the same loop iteration (CPython gh-86296, fixed in
    3.12), so a polling loop carries on as if nothing happened and a plain ``gather`` after
    ``cancel`` waits forever. Tasks still running are cancelled again until they end. A task
    that had already failed is logged, not raised: shutdown goes on.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s had failed", task.get_name(), exc_info=task.exception())
