"""Security events: what happened, kept in a bounded security log, and told to the CSMS.

Every event of the Security Whitepaper's list (its section 8) is stored in the security log
(A04.FR.04) and queued for the CSMS through the outbox, so it is delivered once a connection
exists, also after a restart (A04.FR.02): the whitepaper marks some of them critical, and
others (InvalidCentralSystemCertificate, InvalidFirmwareSignature, ...) its own requirements
say to send. evsed's own entries (:class:`LoggedEvent`: a certificate installed, a security
profile that fell back) are kept in the log only.

``tech_info`` says what a technician needs and never a secret (no key, password or private
key material). The log keeps the newest :data:`MAX_ENTRIES` entries (a rolling log, as the
whitepaper recommends); clearing it on purpose is itself an event (SecurityLogWasCleared).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from evsed.clock import iso
from evsed.store.db import Database
from evsed.store.health import StorageHealth
from evsed.store.outbox import Outbox, Report

log = logging.getLogger(__name__)

MAX_ENTRIES = 5000
MAX_TECH_INFO = 255  # SecurityEventNotification.req techInfo


class SecurityEvent(enum.StrEnum):
    """The Security Whitepaper's events (section 8), spelled as CSMSs expect them."""

    FIRMWARE_UPDATED = "FirmwareUpdated"
    FAILED_TO_AUTHENTICATE_AT_CSMS = "FailedToAuthenticateAtCentralSystem"
    CSMS_FAILED_TO_AUTHENTICATE = "CentralSystemFailedToAuthenticate"
    SETTING_SYSTEM_TIME = "SettingSystemTime"
    STARTUP = "StartupOfTheDevice"
    RESET_OR_REBOOT = "ResetOrReboot"
    SECURITY_LOG_CLEARED = "SecurityLogWasCleared"
    RECONFIGURATION = "ReconfigurationOfSecurityParameters"
    MEMORY_EXHAUSTION = "MemoryExhaustion"
    INVALID_MESSAGES = "InvalidMessages"
    REPLAY_ATTACK = "AttemptedReplayAttacks"
    TAMPER_DETECTED = "TamperDetectionActivated"
    INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
    INVALID_FIRMWARE_SIGNING_CERTIFICATE = "InvalidFirmwareSigningCertificate"
    INVALID_CSMS_CERTIFICATE = "InvalidCentralSystemCertificate"
    INVALID_CHARGE_POINT_CERTIFICATE = "InvalidChargePointCertificate"
    INVALID_TLS_VERSION = "InvalidTLSVersion"
    INVALID_TLS_CIPHER_SUITE = "InvalidTLSCipherSuite"


# The ones the whitepaper marks critical ("should be pushed to the Central System").
CRITICAL = frozenset(
    {
        SecurityEvent.FIRMWARE_UPDATED,
        SecurityEvent.SETTING_SYSTEM_TIME,
        SecurityEvent.STARTUP,
        SecurityEvent.RESET_OR_REBOOT,
        SecurityEvent.SECURITY_LOG_CLEARED,
        SecurityEvent.MEMORY_EXHAUSTION,
        SecurityEvent.TAMPER_DETECTED,
    }
)


# Events that happen in normal operation: logged at INFO, the others at WARNING.
ROUTINE = frozenset(
    {SecurityEvent.STARTUP, SecurityEvent.RESET_OR_REBOOT, SecurityEvent.FIRMWARE_UPDATED}
)


class LoggedEvent(enum.StrEnum):
    """Entries of the security log that are not whitepaper events: not sent to the CSMS."""

    CERTIFICATE_INSTALLED = "CertificateInstalled"
    CERTIFICATE_DELETED = "CertificateDeleted"
    CHARGE_POINT_CERTIFICATE_INSTALLED = "ChargePointCertificateInstalled"
    CHARGE_POINT_CERTIFICATE_REQUESTED = "ChargePointCertificateRequested"
    SECURITY_PROFILE_FALLBACK = "SecurityProfileFallback"
    CONNECTED_WITH_NEW_SETTINGS = "ConnectedWithNewSecuritySettings"


@dataclass(frozen=True, slots=True)
class LogEntry:
    at: str
    type: str
    tech_info: str
    notified: bool


class SecurityLog:
    """The security log in the state database. Synchronous: call through a worker thread."""

    def __init__(self, db: Database, max_entries: int = MAX_ENTRIES) -> None:
        self._db = db
        self._max = max_entries

    def add(self, at: str, kind: str, tech_info: str, notified: bool) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO security_log (at, type, tech_info, notified) VALUES (?, ?, ?, ?)",
                (at, kind, tech_info, int(notified)),
            )
            cur.execute(
                "DELETE FROM security_log WHERE id <= (SELECT MAX(id) FROM security_log) - ?",
                (self._max,),
            )

    def entries(self, oldest: str | None = None, latest: str | None = None) -> list[LogEntry]:
        """Oldest first; ``oldest``/``latest`` bound ``at`` (ISO 8601 UTC, inclusive)."""
        rows = self._db.query(
            "SELECT at, type, tech_info, notified FROM security_log"
            " WHERE (? IS NULL OR at >= ?) AND (? IS NULL OR at <= ?) ORDER BY id",
            (oldest, oldest, latest, latest),
        )
        return [
            LogEntry(str(r["at"]), str(r["type"]), str(r["tech_info"]), bool(r["notified"]))
            for r in rows
        ]

    def clear(self) -> int:
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM security_log")
            return int(cur.rowcount)


class SecurityEvents:
    """Records security events. Use on the event loop; storage work goes to threads."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        storage: StorageHealth,
        *,
        now: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = SecurityLog(db)
        self._outbox = outbox
        self._storage = storage
        self._now = now
        self._monotonic = monotonic
        self._last: dict[str, float] = {}  # rate-limit key -> when last recorded
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, event: SecurityEvent | LoggedEvent, tech_info: str = "") -> None:
        """Store ``event`` in the security log and, for a whitepaper event, queue it for the
        CSMS. Both commits are retried until they succeed (the disk may be full)."""
        info = tech_info[:MAX_TECH_INFO]
        at = iso(self._now())
        notify = isinstance(event, SecurityEvent)
        level = logging.INFO if event in ROUTINE or not notify else logging.WARNING
        log.log(level, "security event %s%s", event, f": {info}" if info else "")
        await self._storage.write(f"security event {event}", self.log.add, at, event, info, notify)
        if notify:
            payload = {"type": str(event), "timestamp": at, "tech_info": info or None}
            await self._outbox.report(Report.SECURITY_EVENT, payload, at, None)

    def record_soon(self, event: SecurityEvent | LoggedEvent, tech_info: str = "") -> None:
        """:meth:`record` from code that cannot wait (a callback): runs in a task."""
        task = asyncio.get_running_loop().create_task(self.record(event, tech_info))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def record_limited(
        self, event: SecurityEvent, key: str, tech_info: str, *, every_s: float
    ) -> bool:
        """Record ``event`` unless one with the same ``key`` was recorded less than
        ``every_s`` ago (a peer that sends garbage must not flood the log or the CSMS).
        True when it was recorded."""
        now = self._monotonic()
        last = self._last.get(key)
        if last is not None and now - last < every_s:
            return False
        self._last[key] = now
        self.record_soon(event, tech_info)
        return True

    async def clear_log(self, who: str) -> int:
        """Empty the security log (a local action); the clearing is the first new entry."""
        removed = await asyncio.to_thread(self.log.clear)
        await self.record(SecurityEvent.SECURITY_LOG_CLEARED, f"{removed} entries, by {who}")
        return removed

    async def settled(self) -> None:
        """Return once every event recorded with ``record_soon`` so far is stored."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
