"""Whether the state database takes writes, and writes that must not be lost.

A commit can fail for reasons that pass: the data partition is full, remounted read-only for a
moment, or an I/O error. A transaction's start or stop, or the record that the CSMS has
answered a message, must not be lost to that: :meth:`StorageHealth.write` tries again (backing
off up to ``RETRY_MAX_S``) until the commit succeeds. A write that may be skipped (a periodic
meter sample) uses :meth:`try_write`. Either way a failure makes the storage unhealthy, and
listeners hear it (each connector raises its storage fault: no session starts and no energy
flows that could not be recorded); a probe write finds out when it is healthy again. Commits run
in worker threads: the event loop carries the safety path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from evsed.clock import iso, utcnow
from evsed.store import kv
from evsed.store.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_MIN_S = 0.5
RETRY_MAX_S = 5.0
PROBE_KEY = "storage.probe"
# What a commit raises when the disk is full, read-only or failing (sqlite3 wraps most OS
# errors; a file the store opens itself raises OSError).
STORAGE_ERRORS = (sqlite3.Error, OSError)


class StorageHealth:
    """Tracks write failures of one database; call its methods on the event loop."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.error = ""  # the last failure while unhealthy; "" when healthy
        self._listeners: list[Callable[[bool], None]] = []
        self._recovered = asyncio.Event()
        self._failing = asyncio.Event()
        self._retrying = 0  # writes in write() that failed and are waiting to try again
        self._probe: asyncio.Task[None] | None = None

    @property
    def ok(self) -> bool:
        return not self.error

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        """``listener(ok)`` on every change between healthy and unhealthy."""
        self._listeners.append(listener)

    async def write(self, what: str, commit: Callable[..., T], *args: object) -> T:
        """Run ``commit(*args)`` in a thread until it succeeds; ``what`` names it in the log."""
        delay, retrying = RETRY_MIN_S, False
        try:
            while True:
                try:
                    result = await asyncio.to_thread(commit, *args)
                except STORAGE_ERRORS as exc:
                    if not retrying:
                        retrying = True
                        self._retrying += 1
                    self._failed(what, exc)
                    log.warning("%s not committed (%s); trying again in %.1f s", what, exc, delay)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._recovered.wait()
                    delay = min(delay * 2, RETRY_MAX_S)
                    continue
                break
        finally:
            if retrying:
                self._retrying -= 1
        self._succeeded()
        return result

    async def try_write(self, what: str, commit: Callable[..., object], *args: object) -> bool:
        """Run ``commit(*args)`` once in a thread; False (and unhealthy) when it fails."""
        try:
            await asyncio.to_thread(commit, *args)
        except STORAGE_ERRORS as exc:
            self._failed(what, exc)
            log.warning("%s dropped: not committed (%s)", what, exc)
            return False
        self._succeeded()
        return True

    async def failing(self) -> None:
        """Return once the storage is unhealthy (at once if it is now)."""
        await self._failing.wait()

    def hurry(self) -> None:
        """Try pending writes again now (the daemon is stopping)."""
        self._wake_retries()

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe

    def _failed(self, what: str, exc: BaseException) -> None:
        was_ok = self.ok
        self.error = f"{what}: {exc}"
        if was_ok:
            log.error("state database %s does not take writes: %s", self._db.path, self.error)
            self._failing.set()
            self._notify()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_healthy(), name="storage-probe")

    def _succeeded(self) -> None:
        """A commit went through. Healthy again only once no write is still waiting to be
        retried: a small write that fits does not mean a stop that did not fit is recorded."""
        if self.ok:
            return
        if self._retrying:
            self._wake_retries()
            return
        self.error = ""
        self._failing.clear()
        log.warning("state database %s takes writes again", self._db.path)
        self._wake_retries()
        self._notify()

    def _wake_retries(self) -> None:
        self._recovered.set()
        self._recovered.clear()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self.ok)

    async def _probe_until_healthy(self) -> None:
        delay = RETRY_MIN_S
        while not self.ok:
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            try:
                await asyncio.to_thread(kv.put, self._db, PROBE_KEY, iso(utcnow()))
            except STORAGE_ERRORS as exc:
                self.error = f"probe write: {exc}"
                continue
            self._succeeded()
