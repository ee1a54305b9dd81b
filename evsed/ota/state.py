"""The update in progress, persisted in the state database so it survives reboots and power cuts.

One update at a time. The record moves through phases; every status reported to the CSMS is
queued in the durable outbox in the same SQLite commit as the phase it belongs to, so after any
crash the CSMS has been (or will be) told exactly what the record says, once.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass

from evsed.store import kv
from evsed.store.db import Database

KEY = "ota.update"


class FirmwareStatus(enum.StrEnum):
    """What an update reports to the CSMS, in the words OCPP uses for it (1.6 with the Security
    Whitepaper, and 2.0.1). Which of them a CSMS client can carry is its own business (OCPP
    1.6's FirmwareStatusNotification, for unsigned updates, knows only some of them)."""

    IDLE = "Idle"
    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    SIGNATURE_VERIFIED = "SignatureVerified"
    INVALID_SIGNATURE = "InvalidSignature"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALLING = "Installing"
    INSTALL_REBOOTING = "InstallRebooting"
    INSTALLED = "Installed"
    INSTALLATION_FAILED = "InstallationFailed"


class UpdatePhase(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for retrieveDate
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"  # verified, waiting until idle / installDateTime / window
    INSTALLING = "installing"  # rauc install running
    REBOOTING = "rebooting"  # installed; the next boot must come up in expected_slot
    ROLLING_BACK = "rolling-back"  # health check failed; the next boot is the old slot
    DONE = "done"


@dataclass(frozen=True, slots=True)
class UpdateState:
    """One firmware update request and how far it got."""

    location: str
    retrieve_at: str  # ISO 8601 UTC
    retries: int
    retry_interval_s: int
    signed: bool = False
    request_id: int | None = None
    install_at: str | None = None
    signing_certificate: str = ""
    signature: str = ""
    phase: UpdatePhase = UpdatePhase.SCHEDULED
    last_status: str = "Idle"
    download_attempts: int = 0
    file: str = ""
    bundle_version: str = ""
    previous_slot: str = ""
    expected_slot: str = ""
    health_deadline: str = ""
    store_url: str = ""  # a delta (casync) bundle's chunk store; "" for a full bundle
    install_attempts: int = 0  # delta installs that failed fetching chunks

    def evolve(self, **changes: object) -> UpdateState:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> UpdateState:
        data = json.loads(text)
        fields = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in fields}
        data["phase"] = UpdatePhase(data.get("phase", UpdatePhase.DONE))
        return cls(**data)


def load(db: Database) -> UpdateState | None:
    text = kv.get(db, KEY)
    return UpdateState.from_json(text) if text else None


def save(db: Database, state: UpdateState) -> None:
    kv.put(db, KEY, state.to_json())
