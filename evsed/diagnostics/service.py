"""The uploads the CSMS asks for: a diagnostics archive (OCPP 1.6 §5.9 GetDiagnostics) and a
log (the Security Whitepaper's GetLog: the security log, or the diagnostics archive).

Rules:
- The request is answered first (with the file name); the archive is built and uploaded in a
  task afterwards (:meth:`RemoteDiagnostics.start`), with the request's retries and retry
  interval (:func:`evsed.upload.upload`).
- Each status is reported once, through the durable outbox, in the same commit as the state
  it belongs to (``kv``): Uploading when the first attempt begins, then Uploaded or how it
  failed. After a restart an upload that was under way is reported failed (its archive went
  with the process), so the CSMS is never left with an upload that will not end.
- One upload of each kind at a time: a new request cancels the one in progress (GetLog answers
  AcceptedCanceled then); the cancelled one reports nothing more.
- Triggered, the status is Uploading (with its requestId for a log) while an upload runs and
  Idle otherwise (§5.17; the whitepaper's requestId is left out when idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from evsed.clock import iso
from evsed.diagnostics.archive import ArchiveSources, Window, build_archive, take_snapshot
from evsed.diagnostics.frames import FrameRing
from evsed.diagnostics.redact import redact_text
from evsed.security.events import SecurityLog
from evsed.store import kv
from evsed.store.outbox import Outbox, Report
from evsed.upload import UploadResult, UploadStatus, redact_url, upload

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 1
DEFAULT_RETRY_INTERVAL_S = 30
UPLOAD_TIMEOUT_S = 60.0


class UploadState(enum.StrEnum):
    """An upload's status in the words of LogStatusNotification (Security Whitepaper; OCPP
    2.0.1's UploadLogStatusEnumType). A client says it with what its messages have."""

    IDLE = "Idle"
    UPLOADING = "Uploading"
    UPLOADED = "Uploaded"
    UPLOAD_FAILURE = "UploadFailure"
    PERMISSION_DENIED = "PermissionDenied"
    BAD_MESSAGE = "BadMessage"
    NOT_SUPPORTED_OPERATION = "NotSupportedOperation"


_STATES = {
    UploadResult.UPLOADING: UploadState.UPLOADING,
    UploadResult.UPLOADED: UploadState.UPLOADED,
    UploadResult.FAILED: UploadState.UPLOAD_FAILURE,
    UploadResult.PERMISSION_DENIED: UploadState.PERMISSION_DENIED,
    UploadResult.BAD_URL: UploadState.BAD_MESSAGE,
}


class LogKind(enum.StrEnum):
    SECURITY = "security"
    DIAGNOSTICS = "diagnostics"


class Slot(enum.StrEnum):
    """The two uploads that may run side by side, each with its report."""

    DIAGNOSTICS = "diagnostics"  # GetDiagnostics
    LOG = "log"  # GetLog

    @property
    def report(self) -> Report:
        return Report.DIAGNOSTICS_STATUS if self is Slot.DIAGNOSTICS else Report.LOG_STATUS

    @property
    def kv_key(self) -> str:
        return f"diagnostics.upload.{self.value}"


@dataclass(frozen=True, slots=True)
class UploadJob:
    slot: Slot
    kind: LogKind
    file_name: str
    location: str
    window: Window
    retries: int
    retry_interval_s: int
    request_id: int | None = None


class RemoteDiagnostics:
    """Use on the event loop; archives, SQLite reads and uploads run in worker threads."""

    def __init__(
        self,
        sources: ArchiveSources,
        security_log: SecurityLog,
        outbox: Outbox,
        *,
        work_dir: Path,
        now: Callable[[], datetime],
        upload_timeout_s: float = UPLOAD_TIMEOUT_S,
    ) -> None:
        self._sources = sources
        self._security_log = security_log
        self._outbox = outbox
        self._db = sources.db
        self._work_dir = work_dir
        self._now = now
        self._timeout_s = upload_timeout_s
        self._running: dict[Slot, tuple[UploadJob, asyncio.Task[None]]] = {}

    @property
    def frames(self) -> FrameRing:
        """Where the CSMS client records its frames (for the archive)."""
        return self._sources.frames

    # -- requests -----------------------------------------------------------------------------

    def diagnostics_job(
        self,
        location: str,
        retries: int | None,
        retry_interval_s: int | None,
        start: datetime | None,
        stop: datetime | None,
    ) -> UploadJob:
        """The GetDiagnostics upload to answer with (its file name) and then :meth:`start`."""
        stamp = self._now().strftime("%Y%m%dT%H%M%SZ")
        return UploadJob(
            Slot.DIAGNOSTICS,
            LogKind.DIAGNOSTICS,
            f"{self._sources.config.charger.id}-diagnostics-{stamp}.tar.gz",
            location,
            Window(start, stop),
            DEFAULT_RETRIES if retries is None else max(0, retries),
            DEFAULT_RETRY_INTERVAL_S if retry_interval_s is None else max(0, retry_interval_s),
        )

    def log_job(
        self,
        kind: LogKind,
        request_id: int,
        location: str,
        retries: int | None,
        retry_interval_s: int | None,
        oldest: datetime | None,
        latest: datetime | None,
    ) -> UploadJob:
        """The GetLog upload to answer with and then :meth:`start`."""
        stamp = self._now().strftime("%Y%m%dT%H%M%SZ")
        charger = self._sources.config.charger.id
        name = (
            f"{charger}-securitylog-{request_id}-{stamp}.log"
            if kind is LogKind.SECURITY
            else f"{charger}-diagnostics-{request_id}-{stamp}.tar.gz"
        )
        return UploadJob(
            Slot.LOG,
            kind,
            name,
            location,
            Window(oldest, latest),
            DEFAULT_RETRIES if retries is None else max(0, retries),
            DEFAULT_RETRY_INTERVAL_S if retry_interval_s is None else max(0, retry_interval_s),
            request_id,
        )

    def busy(self, slot: Slot) -> bool:
        running = self._running.get(slot)
        return running is not None and not running[1].done()

    def start(self, job: UploadJob) -> None:
        """Cancel an upload of the same slot still running, and run ``job`` in a task."""
        previous = self._running.pop(job.slot, None)
        if previous is not None and not previous[1].done():
            log.info("upload of %s cancelled for %s", previous[0].file_name, job.file_name)
            previous[1].cancel()
        task = asyncio.create_task(self._run(job, previous[1] if previous else None))
        self._running[job.slot] = (job, task)

    # -- what a trigger reports ---------------------------------------------------------------

    def diagnostics_status(self) -> UploadState:
        """GetDiagnostics: Uploading while an upload runs, else Idle (§5.17, §7.23)."""
        return UploadState.UPLOADING if self.busy(Slot.DIAGNOSTICS) else UploadState.IDLE

    def log_status(self) -> tuple[UploadState, int | None]:
        """GetLog: (Uploading, requestId) while an upload runs, else (Idle, None)."""
        running = self._running.get(Slot.LOG)
        if running is None or running[1].done():
            return UploadState.IDLE, None
        return UploadState.UPLOADING, running[0].request_id

    # -- inside -------------------------------------------------------------------------------

    async def resume(self) -> None:
        """After a start: an upload the previous process left Uploading is reported failed."""
        for slot in Slot:
            stored = await asyncio.to_thread(kv.get, self._db, slot.kv_key)
            state = json.loads(stored) if stored else {}
            if state.get("status") == UploadState.UPLOADING:
                log.warning("the %s upload was cut short by a restart", slot)
                await self._report(slot, UploadState.UPLOAD_FAILURE, state.get("request_id"))
        await asyncio.to_thread(shutil.rmtree, self._work_dir, True)

    async def stop(self) -> None:
        for _, task in self._running.values():
            task.cancel()
        for _, task in self._running.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, job: UploadJob, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await previous  # its worker has stopped writing its file
        path = self._work_dir / job.file_name
        log.info("preparing %s for %s", job.file_name, redact_url(job.location))
        try:
            await self._write(job, path)
        except Exception as exc:
            log.exception("writing %s failed", job.file_name)
            await self._report(job.slot, UploadState.UPLOAD_FAILURE, job.request_id, str(exc))
            return
        try:

            async def told(status: UploadStatus) -> None:
                state = _STATES[status.result]
                await self._report(job.slot, state, job.request_id, status.reason)

            await upload(
                path,
                job.location,
                retries=job.retries,
                retry_interval_s=job.retry_interval_s,
                timeout_s=self._timeout_s,
                status=told,
            )
        finally:
            await asyncio.to_thread(path.unlink, True)

    async def _write(self, job: UploadJob, path: Path) -> None:
        if job.kind is LogKind.SECURITY:
            oldest = iso(job.window.start) if job.window.start else None
            latest = iso(job.window.stop) if job.window.stop else None
            await asyncio.to_thread(self._write_security_log, path, oldest, latest)
            return
        snapshot = take_snapshot(self._sources)
        await asyncio.to_thread(
            build_archive, self._sources, snapshot, job.window, path, self._now()
        )

    def _write_security_log(self, path: Path, oldest: str | None, latest: str | None) -> None:
        entries = self._security_log.entries(oldest, latest)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{e.at} {e.type} {redact_text(e.tech_info)}".rstrip() + "\n" for e in entries]
        path.write_text("".join(lines))

    async def _report(
        self, slot: Slot, state: UploadState, request_id: int | None, reason: str = ""
    ) -> None:
        if reason and state is not UploadState.UPLOADING:
            log.info("%s upload: %s (%s)", slot, state, reason)
        payload = {"status": str(state), "request_id": request_id}
        stored = json.dumps(payload)
        await self._outbox.report(slot.report, payload, iso(self._now()), (slot.kv_key, stored))
