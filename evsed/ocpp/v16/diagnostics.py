"""GetDiagnostics (OCPP 1.6 §5.9, Firmware Management profile) and the Security Whitepaper's
GetLog, answered here and done by :class:`evsed.diagnostics.service.RemoteDiagnostics`.

- GetDiagnostics.conf carries the name of the archive that will be uploaded into
  ``location``; DiagnosticsStatusNotification (§4.4) then says Uploading, and Uploaded or
  UploadFailed (:mod:`evsed.ocpp.v16.reports`). ``startTime``/``stopTime`` bound the log lines
  and frames in it.
- GetLog.conf is Accepted with the filename, or AcceptedCanceled when it replaces a log upload
  still running; LogStatusNotification (requestId, status) follows: Uploading, then Uploaded,
  UploadFailure, PermissionDenied (HTTP 401/403, FTP 530) or BadMessage (a location that is not
  an ftp, http or https URL). SecurityLog uploads the security log between ``oldestTimestamp``
  and ``latestTimestamp``; DiagnosticsLog the diagnostics archive for that window.

Both are served with or without ``[ota]``: they need no firmware updater. The handlers answer;
the upload starts from ``@after``, so its first status follows the answer.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from evsed.clock import parse_iso
from evsed.diagnostics.service import LogKind, RemoteDiagnostics, Slot, UploadJob

log = logging.getLogger(__name__)

_LOG_KINDS = {"SecurityLog": LogKind.SECURITY, "DiagnosticsLog": LogKind.DIAGNOSTICS}


class DiagnosticsHandlers:
    """Mixed into :class:`evsed.ocpp.v16.charge_point.V16ChargePoint`."""

    _ops: Any
    _prepared_upload: UploadJob | None = None  # answered, to start once the answer is out

    @property
    def _remote_diagnostics(self) -> RemoteDiagnostics:
        diagnostics: RemoteDiagnostics = self._ops.diagnostics
        return diagnostics

    @on(Action.get_diagnostics)
    def on_get_diagnostics(
        self,
        location: str,
        retries: int | None = None,
        retry_interval: int | None = None,
        start_time: str | None = None,
        stop_time: str | None = None,
        **_: Any,
    ) -> call_result.GetDiagnostics:
        job = self._remote_diagnostics.diagnostics_job(
            location,
            retries,
            retry_interval,
            parse_iso(start_time) if start_time else None,
            parse_iso(stop_time) if stop_time else None,
        )
        self._prepared_upload = job
        return call_result.GetDiagnostics(file_name=job.file_name)

    @after(Action.get_diagnostics)
    def after_get_diagnostics(self, **_: Any) -> None:
        self._start_prepared()

    @on(Action.get_log)
    def on_get_log(
        self,
        log: dict[str, Any],
        log_type: str,
        request_id: int,
        retries: int | None = None,
        retry_interval: int | None = None,
        **_: Any,
    ) -> call_result.GetLog:
        oldest, latest = log.get("oldest_timestamp"), log.get("latest_timestamp")
        job = self._remote_diagnostics.log_job(
            _LOG_KINDS[log_type],
            request_id,
            log["remote_location"],
            retries,
            retry_interval,
            parse_iso(oldest) if oldest else None,
            parse_iso(latest) if latest else None,
        )
        replacing = self._remote_diagnostics.busy(Slot.LOG)
        self._prepared_upload = job
        status = "AcceptedCanceled" if replacing else "Accepted"
        return call_result.GetLog(status=status, filename=job.file_name)

    @after(Action.get_log)
    def after_get_log(self, **_: Any) -> None:
        self._start_prepared()

    def _start_prepared(self) -> None:
        job, self._prepared_upload = self._prepared_upload, None
        if job is not None:
            self._remote_diagnostics.start(job)
