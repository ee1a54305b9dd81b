"""Version-neutral reports (:class:`evsed.store.outbox.Report`) in OCPP 1.6's words.

- A firmware status of a signed update (Security Whitepaper) is a
  SignedFirmwareStatusNotification with its requestId; every status can be said that way.
- A firmware status of a plain UpdateFirmware is a FirmwareStatusNotification, whose enum
  (§7.25) has only Downloaded, DownloadFailed, Downloading, Idle, InstallationFailed, Installing
  and Installed: the other statuses are not sent.
- A security event is a SecurityEventNotification (Security Whitepaper).
- The status of a GetDiagnostics upload is a DiagnosticsStatusNotification (§4.4), whose enum
  (§7.23) says every failure as UploadFailed; the status of a GetLog upload is a
  LogStatusNotification (Security Whitepaper) with its requestId.
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call

from evsed.diagnostics.service import UploadState
from evsed.ota.state import FirmwareStatus
from evsed.store.outbox import Report

BASIC_FIRMWARE_STATUSES = frozenset(
    {
        FirmwareStatus.DOWNLOADED,
        FirmwareStatus.DOWNLOAD_FAILED,
        FirmwareStatus.DOWNLOADING,
        FirmwareStatus.IDLE,
        FirmwareStatus.INSTALLATION_FAILED,
        FirmwareStatus.INSTALLING,
        FirmwareStatus.INSTALLED,
    }
)
# What a plain FirmwareStatusNotification says while an update is in a step it has no word for
# (asked by TriggerMessage).
_BASIC_NEAREST = {
    FirmwareStatus.DOWNLOAD_SCHEDULED: FirmwareStatus.IDLE,
    FirmwareStatus.SIGNATURE_VERIFIED: FirmwareStatus.DOWNLOADED,
    FirmwareStatus.INSTALL_SCHEDULED: FirmwareStatus.DOWNLOADED,
    FirmwareStatus.INSTALL_REBOOTING: FirmwareStatus.INSTALLING,
    FirmwareStatus.INVALID_SIGNATURE: FirmwareStatus.INSTALLATION_FAILED,
}


def message_for(report: Report, payload: dict[str, Any]) -> Any | None:
    """The CALL payload that delivers ``report``, or None when 1.6 has nothing to send."""
    match report:
        case Report.FIRMWARE_STATUS:
            status = FirmwareStatus(payload["status"])
            if payload.get("signed"):
                return call.SignedFirmwareStatusNotification(
                    status=str(status), request_id=payload.get("request_id")
                )
            if status not in BASIC_FIRMWARE_STATUSES:
                return None
            return call.FirmwareStatusNotification(status=str(status))
        case Report.DIAGNOSTICS_STATUS:
            return call.DiagnosticsStatusNotification(
                status=diagnostics_status(UploadState(payload["status"]))
            )
        case Report.LOG_STATUS:
            return call.LogStatusNotification(
                status=str(payload["status"]), request_id=payload.get("request_id")
            )
        case Report.SECURITY_EVENT:
            return call.SecurityEventNotification(
                type=payload["type"],
                timestamp=payload["timestamp"],
                tech_info=payload.get("tech_info"),
            )
    return None


def basic_status(status: FirmwareStatus) -> FirmwareStatus:
    """``status`` in FirmwareStatusNotification's smaller enum."""
    return _BASIC_NEAREST.get(status, status)


def diagnostics_status(state: UploadState) -> str:
    """``state`` in DiagnosticsStatusNotification's enum (§7.23: Idle, Uploaded, UploadFailed,
    Uploading)."""
    if state in (UploadState.IDLE, UploadState.UPLOADING, UploadState.UPLOADED):
        return str(state)
    return "UploadFailed"
