"""Keeps the fault history (:mod:`evsed.store.faults`): every fault a connector raises and
clears, in order, with the vendor error code and text a technician reads, and the error code
the CSMS client reported it as. Written off the event loop, in the order things happened; a
write that fails is logged and dropped (the history is for people, not for safety).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime

from evsed.charging.faults import FAULT_DETAILS, Fault
from evsed.clock import iso
from evsed.port import Connector
from evsed.store.faults import FaultStore

log = logging.getLogger(__name__)


class FaultRecorder:
    def __init__(
        self,
        store: FaultStore,
        connectors: Mapping[int, Connector],
        *,
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._now = now
        self._known: dict[int, frozenset[Fault]] = {cid: frozenset() for cid in connectors}
        self._writes: asyncio.Queue[Callable[[], object]] = asyncio.Queue()
        for connector in connectors.values():
            connector.on_change(self._connector_changed)

    async def run(self) -> None:
        """Close what a previous run left open, then write each change as it comes."""
        closed = await asyncio.to_thread(self._store.close_open, iso(self._now()))
        if closed:
            log.info("fault history: %d fault(s) open at the last stop closed", closed)
        while True:
            write = await self._writes.get()
            try:
                await asyncio.to_thread(write)
            except sqlite3.Error as exc:
                log.warning("fault history not written: %s", exc)

    def reported(self, connector_id: int, vendor_error_code: str, error_code: str) -> None:
        """The CSMS client reported the connector's fault as ``error_code``."""
        self._writes.put_nowait(
            lambda: self._store.reported(connector_id, vendor_error_code, error_code)
        )

    def _connector_changed(self, connector: Connector) -> None:
        cid = connector.connector_id
        now = connector.state.faults
        was = self._known.get(cid, frozenset())
        if now == was:
            return
        self._known[cid] = now
        at = iso(self._now())
        for fault in sorted(now - was):
            vendor, info = FAULT_DETAILS.get(fault, (f"EVSED-{fault}", str(fault)))
            log.info("connector %d: fault %s raised", cid, fault, extra={"connector": cid})
            self._writes.put_nowait(
                functools.partial(self._store.raised, cid, str(fault), vendor, info, at)
            )
        for fault in sorted(was - now):
            log.info("connector %d: fault %s cleared", cid, fault, extra={"connector": cid})
            self._writes.put_nowait(functools.partial(self._store.cleared, cid, str(fault), at))
