"""The durable queue of messages for the CSMS, shared by everything that writes to it.

Writers are the CSMS client of one OCPP version (transaction messages, in its own words) and
the version-neutral parts of the daemon (firmware update statuses, security events, upload
statuses of diagnostics and logs), which
queue a :class:`Report` that the client turns into its version's message when it delivers it.
A report is committed together with the state it reports (``kv``), so after a power cut the
two are never out of step and each report is delivered exactly once. ``wake`` tells the
delivering client that there is something new.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from typing import Any

from evsed.store.health import StorageHealth
from evsed.store.transactions import TransactionStore

REPORT_PREFIX = "report:"


class Report(enum.StrEnum):
    """Version-neutral messages; each CSMS client says how it delivers them."""

    FIRMWARE_STATUS = "firmware-status"  # {"status": FirmwareStatus, "request_id", "signed"}
    SECURITY_EVENT = "security-event"  # {"type", "timestamp", "tech_info"}
    DIAGNOSTICS_STATUS = "diagnostics-status"  # {"status": UploadState, "request_id": None}
    LOG_STATUS = "log-status"  # {"status": UploadState, "request_id"}

    @property
    def action(self) -> str:
        """The outbox row's ``action`` for this report."""
        return REPORT_PREFIX + self.value


def report_of(action: str) -> Report | None:
    """The report an outbox row holds, or None for a message in a client's own words."""
    if not action.startswith(REPORT_PREFIX):
        return None
    try:
        return Report(action.removeprefix(REPORT_PREFIX))
    except ValueError:
        return None  # written by a newer release (we were rolled back): the client skips it


class Outbox:
    """The outbox store plus the wake-up of its deliverer. Use on the event loop."""

    def __init__(self, store: TransactionStore, storage: StorageHealth) -> None:
        self.store = store
        self._storage = storage
        self._woken = asyncio.Event()
        self._idle = asyncio.Event()

    def wake(self) -> None:
        """Something was queued: the deliverer looks again, and the outbox is not idle."""
        self._idle.clear()
        self._woken.set()

    def delivered_all(self) -> None:
        """The deliverer found nothing left to send."""
        self._idle.set()

    async def idle(self) -> None:
        """Return once everything queued so far has been delivered (or dropped)."""
        await self._idle.wait()

    async def woken(self) -> None:
        """Wait for the next :meth:`wake` (at once if one came since the last wait)."""
        await self._woken.wait()
        self._woken.clear()

    def clear(self) -> None:
        self._woken.clear()

    async def report(
        self, report: Report, payload: dict[str, Any], timestamp: str, kv: tuple[str, str] | None
    ) -> None:
        """Queue ``report`` and store ``kv`` in the same commit (retried until committed)."""
        await self._storage.write(
            str(report), self.store.enqueue, report.action, payload, timestamp, kv
        )
        self.wake()

    async def enqueue_droppable(self, action: str, payload: dict[str, Any], timestamp: str) -> bool:
        """Queue a message that may be dropped first when the outbox is full, and that is
        skipped (False) when the database takes no writes now."""
        commit = functools.partial(self.store.enqueue, droppable=True)
        queued = await self._storage.try_write(action, commit, action, payload, timestamp)
        if queued:
            self.wake()
        return queued
