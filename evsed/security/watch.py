"""Security events the daemon notices by itself: the system time stepping (NTP, a manual
``date``), and the data partition running full (MemoryExhaustion)."""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable

from evsed.security.events import SecurityEvent, SecurityEvents

CLOCK_CHECK_S = 5.0
CLOCK_STEP_S = 30.0  # a jump of the wall clock against the monotonic clock beyond this


async def watch_clock(
    events: SecurityEvents,
    *,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    every_s: float = CLOCK_CHECK_S,
) -> None:
    """SettingSystemTime when the wall clock jumps against the monotonic one."""
    offset = wall() - monotonic()
    while True:
        await asyncio.sleep(every_s)
        now_offset = wall() - monotonic()
        step = now_offset - offset
        if abs(step) > CLOCK_STEP_S:
            events.record_soon(
                SecurityEvent.SETTING_SYSTEM_TIME, f"system time stepped {step:+.0f} s"
            )
        offset = now_offset


def storage_listener(events: SecurityEvents, error: Callable[[], str]) -> Callable[[bool], None]:
    """A StorageHealth listener: MemoryExhaustion when writes fail because the disk is full
    (at most once an hour; the event itself is stored once the disk takes writes again)."""

    def changed(ok: bool) -> None:
        problem = error()
        if not ok and ("full" in problem.lower() or errno.errorcode[errno.ENOSPC] in problem):
            events.record_limited(
                SecurityEvent.MEMORY_EXHAUSTION,
                "disk-full",
                f"state database: {problem}",
                every_s=3600,
            )

    return changed
